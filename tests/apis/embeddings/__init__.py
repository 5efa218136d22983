"""POST /v1/embeddings: the gateway, the demo model, real clients, fuzzing."""
