"""Client APIs: one sub-package each, with its schema, its surface (what the stages need) and its codecs."""
