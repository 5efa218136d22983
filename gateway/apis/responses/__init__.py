"""POST /v1/responses: the schema, the surface and its codecs (passthrough, conversion to chat)."""
