"""Anthropic's Messages API: its schema, its surface, and its codecs."""
