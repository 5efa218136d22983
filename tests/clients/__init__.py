"""Real clients that speak more than one API, run as their users run them: the OpenAI Agents SDK
and the Vercel AI SDK (each API's own clients are in tests/apis/<api>/test_clients.py)."""
