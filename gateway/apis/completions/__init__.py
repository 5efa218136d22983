"""POST /v1/completions: the schema, the surface and its codecs (passthrough, conversion to chat)."""
