"""The request stages, shared by every API: authenticate, admit, plan, relay, settle.

In process where a stage stands alone (test_limiter, test_plan, test_health,
test_deadline, test_tally), through a real gateway process otherwise.
"""
