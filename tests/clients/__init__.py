"""Real clients run against the gateway as their users run them (tests/apis/*/test_*sdk.py)."""
