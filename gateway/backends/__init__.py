"""Local vLLM backends (backends/*.yaml): launch, supervise, inspect. Off the request path."""
