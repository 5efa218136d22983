"""POST /v1/chat/completions: the schema, the surface, the dialect codec, answer adaptation and fan-out."""
