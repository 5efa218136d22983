"""The demo model's embeddings: deterministic, unit-length, `dimensions` long, base64 as OpenAI's."""

from __future__ import annotations

import base64
import math
import struct

import pytest

from tests.apis.embeddings.conftest import EMBEDDINGS, auth


def embed(http, **body) -> dict:
    response = http.post(EMBEDDINGS, headers=auth(), json={"model": "demo", **body})
    assert response.status_code == 200, response.text
    return response.json()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_equal_texts_get_equal_vectors_of_length_one(http):
    answer = embed(http, input=["The cat sat on the mat.", "A dog barked.",
                                "The cat sat on the mat."])

    first, other, again = (d["embedding"] for d in answer["data"])
    assert len(first) == 256  # the demo's default
    assert first == again and first != other
    for vector in (first, other):
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-6)
    assert [d["index"] for d in answer["data"]] == [0, 1, 2]
    assert answer["model"] == "demo"
    assert answer["usage"] == {"prompt_tokens": 7 + 4 + 7, "total_tokens": 18}  # demo tokens


def test_the_same_text_gets_the_same_vector_in_another_request(http):
    assert embed(http, input="stable")["data"] == embed(http, input=["stable"])["data"]


def test_texts_that_share_words_are_closer(http):
    cat, cats, tax = (d["embedding"] for d in embed(http, input=[
        "my cat sleeps", "my cats sleep", "quarterly tax filing"])["data"])

    assert cosine(cat, cats) > 0.5 > cosine(cat, tax)


@pytest.mark.parametrize("dimensions", [1, 3, 1536, 4096])
def test_dimensions(http, dimensions):
    vector = embed(http, input="sized", dimensions=dimensions)["data"][0]["embedding"]

    assert len(vector) == dimensions
    assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-5)


def test_base64_is_the_same_vector_as_little_endian_float32(http):
    floats = embed(http, input="same numbers", dimensions=16)["data"][0]["embedding"]
    packed = embed(http, input="same numbers", dimensions=16,
                   encoding_format="base64")["data"][0]["embedding"]

    assert list(struct.unpack("<16f", base64.b64decode(packed))) == floats


def test_token_ids(http):
    answer = embed(http, input=[[1, 2, 3], [3, 2, 1], [1, 2, 3]])

    first, reversed_, again = (d["embedding"] for d in answer["data"])
    assert first == again != reversed_
    assert answer["usage"]["prompt_tokens"] == 9


def test_too_many_dimensions_are_refused_by_the_demo_profile(http):
    response = http.post(EMBEDDINGS, headers=auth(),
                         json={"model": "demo", "input": "x", "dimensions": 4097})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "dimensions" and "between 1 and 4096" in error["message"]
