"""POST /v1/completions: passed through, converted to chat, fuzzed, and used by real clients."""
