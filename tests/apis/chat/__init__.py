"""POST /v1/chat/completions: dialects, the answer adapter, fuzzing, the openai SDK."""
