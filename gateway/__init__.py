"""An OpenAI-compatible gateway in front of local vLLM backends and remote providers."""

__version__ = "0.1.0"
