"""Token estimates: how many tokens a text is, for when no upstream has counted.

One estimate, from the text's characters weighted by class (fitted to a real
tokenizer: docs/accounting.md). Where a request's text is only counted in
characters (a prompt, at admission: a few C-speed passes over every prompt would
cost more than the rest of the admission), `of_chars` takes them at the
weight of prose's heaviest common class, so a reservation errs on the high side
and is replaced by the real count when the answer ends.
"""

from __future__ import annotations

# Tokens per character, by class of character, fitted to o200k_base on the corpus of
# bench/stream_tokens.py (`--fit`). A space mostly joins the word after it (and a run of
# them indents code in one token); a newline is a token and leaves the next word without
# its space.
WEIGHTS = {"letter": 0.23, "digit": 0.75, "space": 0.05, "newline": 1.8, "other": 0.35,
           "two-byte": 0.30, "wider": 0.74}
_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))
_DIGITS = b"0123456789"
_HIGH = bytes(range(128, 256))
_LEAD2 = bytes(range(0xC0, 0xE0))  # starts a 2-byte character: Latin, Greek, Cyrillic, Arabic
_LEAD3 = bytes(range(0xE0, 0xF8))  # starts a 3- or 4-byte one: CJK, most other scripts, emoji


def char_classes(text: bytes) -> dict[str, int]:
    """How many characters of each class UTF-8 `text` has (a few C-speed passes)."""
    size = len(text)
    counts = {"letter": size - len(text.translate(None, _LETTERS)),
              "digit": size - len(text.translate(None, _DIGITS)),
              "space": text.count(b" "), "newline": text.count(b"\n")}
    ascii_ = len(text.translate(None, _HIGH))
    counts["other"] = ascii_ - sum(counts.values())
    counts["two-byte"] = size - len(text.translate(None, _LEAD2))
    counts["wider"] = size - len(text.translate(None, _LEAD3))
    return counts


def text_tokens(text: bytes) -> float:
    """Tokens in UTF-8 `text`, roughly, from its characters (see WEIGHTS)."""
    if not text:
        return 0.0
    return sum(WEIGHTS[name] * n for name, n in char_classes(text).items())


PROMPT_CHARS_PER_TOKEN = 4  # letters weigh ~0.23 a token, punctuation ~0.35: 1/4 is above prose


def of_chars(chars: int) -> int:
    """Tokens in a text of `chars` characters, roughly (see PROMPT_CHARS_PER_TOKEN)."""
    return chars // PROMPT_CHARS_PER_TOKEN
