"""The demo model's embeddings: deterministic vectors from hashed features of the input.

Each text is split into the demo's tokens (gateway/upstream/demo.py); every
token, lower-cased, and every three-character piece of it is hashed (CRC-32)
to one of the vector's positions, with a sign, and the vector is scaled to
length 1. Equal texts get equal vectors, texts that share words or pieces of
words point in similar directions, and others almost never collide. A token-id
input hashes each id and each pair of neighbours instead. `DIMENSIONS` (256)
numbers unless the request's `dimensions` asks for up to `MAX_DIMENSIONS`;
base64 is little-endian float32, as OpenAI sends it. Not a language model's
embeddings, and it says so in no field: it is for trying clients out.
"""

from __future__ import annotations

import base64
import math
import sys
import zlib
from array import array

DIMENSIONS = 256
MAX_DIMENSIONS = 4096
_SIGN = 0x80000000


def _text_features(text: str, tokens: list[str]) -> list[tuple[str, float]]:
    features: list[tuple[str, float]] = []
    for token in tokens:
        word = token.lower()
        features.append(("w:" + word, 1.0))
        padded = f"<{word}>"
        features += (("c:" + padded[i:i + 3], 0.5) for i in range(len(padded) - 2))
    return features or [("x:" + text, 1.0)]  # only spaces: the text itself


def _token_features(ids: list[int]) -> list[tuple[str, float]]:
    features = [(f"t:{token}", 1.0) for token in ids]
    features += ((f"p:{a},{b}", 0.5) for a, b in zip(ids, ids[1:], strict=False))
    return features


def vector(features: list[tuple[str, float]], dimensions: int) -> array:
    """The features hashed into `dimensions` float32 numbers, of length 1."""
    values = [0.0] * dimensions
    for feature, weight in features:
        h = zlib.crc32(feature.encode(errors="replace"))
        values[h % dimensions] += weight if h & _SIGN else -weight
    norm = math.sqrt(sum(v * v for v in values))
    if norm == 0.0:  # the features cancelled out: one position, from all of them
        values[zlib.crc32(repr(features).encode(errors="replace")) % dimensions] = norm = 1.0
    return array("f", (v / norm for v in values))


def encode(numbers: array, encoding_format: str) -> list[float] | str:
    if encoding_format != "base64":
        return numbers.tolist()
    if sys.byteorder == "big":
        numbers = array("f", numbers)
        numbers.byteswap()
    return base64.b64encode(numbers.tobytes()).decode()


def embeddings(request: dict, tokenize) -> tuple[list[dict], int]:
    """The `data` of an embeddings answer to a well-formed `request`, and its prompt tokens.
    `tokenize` splits a text into the demo's tokens. ValueError if the request is not one."""
    value = request.get("input")
    dimensions = request.get("dimensions") or DIMENSIONS
    encoding_format = request.get("encoding_format") or "float"
    if type(dimensions) is not int or not 1 <= dimensions <= MAX_DIMENSIONS:
        raise ValueError(f"dimensions must be an integer from 1 to {MAX_DIMENSIONS}")
    if type(value) is str or (type(value) is list and value and type(value[0]) is int):
        value = [value]
    if type(value) is not list or not value:
        raise ValueError("input must be a text, an array of texts or of token arrays")
    data, used = [], 0
    for index, item in enumerate(value):
        if type(item) is str and item:
            tokens = tokenize(item)
            features = _text_features(item, tokens)
            used += len(tokens)
        elif type(item) is list and item and all(type(t) is int for t in item):
            features = _token_features(item)
            used += len(item)
        else:
            raise ValueError(f"input[{index}] is neither a text nor an array of token ids")
        data.append({"object": "embedding", "index": index,
                     "embedding": encode(vector(features, dimensions), encoding_format)})
    return data, used
