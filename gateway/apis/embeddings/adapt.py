"""Adapt an upstream's embeddings to what the client expects: `model` is the alias it asked for,
and `usage` is always there (estimated from the input when the upstream sent none).

The vectors pass as they came, floats or base64; embeddings never stream.
"""

from __future__ import annotations

import orjson

from gateway.apis.relayed import encoded, load_answer
from gateway.config import Route


class Answer:
    __slots__ = ("alias", "prompt_estimate", "secrets")

    def __init__(self, route: Route, prompt_estimate: int, model: str | None = None,
                 secrets: tuple[str, ...] = ()) -> None:
        self.alias = model or route.alias  # what the client asked for (a wildcard's full name)
        self.prompt_estimate = prompt_estimate  # tokens, from admission: when no usage says
        self.secrets = encoded(secrets)  # the provider's keys: never relayed

    def completion(self, data: bytes) -> tuple[bytes, dict, str | None]:
        """The whole answer for the client, its usage (no completion: 0), the upstream's model."""
        answer = load_answer(data, self.secrets, "data", "a list of embeddings")
        upstream_model = answer.get("model")
        answer["model"] = self.alias
        usage = answer.get("usage")
        prompt = usage.get("prompt_tokens") if type(usage) is dict else None
        if type(prompt) is not int:
            prompt = self.prompt_estimate
            answer["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt, "estimated": True}
        return (orjson.dumps(answer),
                {"prompt_tokens": prompt, "completion_tokens": 0, "total_tokens": prompt},
                upstream_model if type(upstream_model) is str else None)

    def stream(self, show_usage: bool = True, max_event: int = 0):
        raise NotImplementedError("embeddings never stream (the schema refuses stream: true)")
