"""What of a client's own text the gateway may repeat, in an error message or a log line.

A model name or a path that the config does not know is the client's text, and
clients paste the wrong thing: a key in the model field ends up in error
messages, in their logs and in ours. What is repeated is capped, printable,
and never anything shaped like a key.
"""

from __future__ import annotations

import re

LIMIT = 64  # characters of a client's text repeated at most
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
# Shaped like a secret: a known key prefix followed by more, or a long run of letters and
# digits with no separators (model names are words joined by - . / :).
_KEY_SHAPED = re.compile(
    r"(?:sk|rk|pk|ak|key|api|ghp|gho|xox[abp]|AKIA|AIza)[-_][A-Za-z0-9_\-]{8,}"
    r"|(?=[A-Za-z0-9_+=]*\d)(?=[A-Za-z0-9_+=]*[A-Za-z])[A-Za-z0-9_+=]{24,}"
    r"|eyJ[A-Za-z0-9_\-]{10,}(?:\.[A-Za-z0-9_\-]*){0,2}")
MASK = "(hidden: shaped like a key)"


def echo(text: str, limit: int = LIMIT) -> str:
    """`text` as it may be shown back: key-shaped runs masked, unprintables as '?', capped."""
    text = _KEY_SHAPED.sub(MASK, text[: limit * 4])
    text = _UNPRINTABLE.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
