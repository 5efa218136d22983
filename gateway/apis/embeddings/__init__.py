"""POST /v1/embeddings: the schema, the surface and its passthrough codec, the answer's adaptation."""
