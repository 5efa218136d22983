"""The completions surface in process: validation, estimates, and what each codec sends where.

On a config compiled from a few lines of routes.yaml with the shipped profiles, as
`gateway serve` loads it; the same through a real gateway: test_passthrough.py and
test_conversion.py.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.apis.completions.surface import COMPLETIONS, PASSTHROUGH, TO_CHAT, parse
from gateway.config import Target
from gateway.core.errors import InvalidRequest
from gateway.core.translate import Rejected
from tests.profiles import NOWHERE, targets_on

PROVIDERS = {"openai": f"{{profile: openai, {NOWHERE}}}", "vllm": f"{{profile: vllm, {NOWHERE}}}",
             "aggregator": f"{{profile: aggregator, {NOWHERE}}}",
             "strict": f"{{profile: aggregator, {NOWHERE}, unsupported_params: reject}}",
             "model-api": f"{{profile: model-api, {NOWHERE}}}", "demo": "{profile: demo}"}


@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> dict[str, Target]:
    """A target on each provider, by the provider's name."""
    return targets_on(tmp_path_factory.mktemp("codecs"), PROVIDERS)


def request(**fields) -> dict:
    return parse(orjson.dumps({"model": "m", "prompt": "Say hi", **fields}))


@pytest.mark.parametrize("prompt,param,message", [
    (5, "prompt", "Invalid value for 'prompt': expected a string, an array of strings, an array "
                  "of token ids or an array of arrays of token ids."),
    ([1, "a"], "prompt[1]", "Invalid type for 'prompt[1]': expected an integer, but got a string "
                            "instead."),
    (["a", 3], "prompt[1]", "Invalid type for 'prompt[1]': expected a string, but got an integer "
                            "instead."),
    ([[1, 2], [3, True]], "prompt[1][1]", "Invalid type for 'prompt[1][1]': expected an integer, "
                                          "but got a boolean instead."),
    ([], "prompt", "Invalid 'prompt': empty array. Expected an array with minimum length 1, but "
                   "got an empty array instead."),
    ([-1], "prompt[0]", "Invalid value for 'prompt[0]': input should be greater than or equal to "
                        "0, but got -1 instead."),
])
def test_a_prompt_of_the_wrong_shape_is_a_400_naming_the_item(prompt, param, message):
    with pytest.raises(InvalidRequest) as refused:
        request(prompt=prompt)
    assert (refused.value.param, refused.value.message) == (param, message)


def test_logprobs_is_a_count_here_not_chats_boolean():
    assert request(logprobs=3)["logprobs"] == 3
    with pytest.raises(InvalidRequest) as refused:
        request(logprobs=True)
    assert refused.value.message == ("Invalid type for 'logprobs': expected an integer, but got "
                                     "a boolean instead.")
    with pytest.raises(InvalidRequest, match="Missing required parameter: 'prompt'"):
        parse(b'{"model": "m"}')
    with pytest.raises(InvalidRequest, match="expected a JSON object with 'model' and 'prompt'"):
        parse(b"  ")


def test_the_estimates_read_text_and_token_ids():
    assert COMPLETIONS.prompt_tokens(request(prompt="x" * 40, suffix="y" * 8)) == 12
    assert COMPLETIONS.prompt_tokens(request(prompt=["x" * 40, "x" * 40])) == 20
    assert COMPLETIONS.prompt_tokens(request(prompt=[1, 2, 3])) == 3
    assert COMPLETIONS.prompt_tokens(request(prompt=[[1, 2], [3]])) == 3
    # OpenAI's default answer is 16 tokens; best_of makes that many answers upstream.
    assert COMPLETIONS.completion_tokens(request(), 1024) == 16
    assert COMPLETIONS.completion_tokens(request(max_tokens=100, n=2, best_of=3), 1024) == 300


def test_each_target_gets_the_codec_of_the_api_it_speaks(targets):
    assert COMPLETIONS.codec(targets["openai"]) is PASSTHROUGH
    assert COMPLETIONS.codec(targets["vllm"]) is PASSTHROUGH
    assert COMPLETIONS.codec(targets["aggregator"]) is TO_CHAT
    assert COMPLETIONS.codec(targets["demo"]) is TO_CHAT
    assert all(COMPLETIONS.served_by(t) for t in targets.values())


def test_passthrough_keeps_max_tokens_and_applies_the_completions_rules(targets):
    payload = request(max_tokens=50, logprobs=7, best_of=30, echo=True, temperature=3,
                      max_completion_tokens=9, stream_options={"include_usage": False})
    sent = PASSTHROUGH.translate(payload, targets["openai"], stream=True)

    assert sent.body == {"model": "up-openai", "prompt": "Say hi", "max_tokens": 50, "logprobs": 5,
                         "best_of": 20, "echo": True, "temperature": 2, "stream": True,
                         "stream_options": {"include_usage": True}}
    assert sorted(sent.adjusted) == ["best_of", "logprobs", "temperature"]
    assert sent.dropped == ["max_completion_tokens"]  # chat's name: the completions API has none
    assert sent.hide_usage  # asked for upstream, not shown to a client that did not ask


def test_passthrough_to_vllm_passes_its_extras_and_drops_best_of(targets):
    payload = request(prompt=[[1, 2], [3]], best_of=2, logprobs=20, top_k=5, ignore_eos=True)
    sent = PASSTHROUGH.translate(payload, targets["vllm"], stream=False)

    assert sent.body == {"model": "up-vllm", "prompt": [[1, 2], [3]], "logprobs": 20, "top_k": 5,
                         "ignore_eos": True}
    assert sent.dropped == ["best_of"]


def test_conversion_sends_one_user_message_in_the_chat_dialect(targets):
    sent = TO_CHAT.translate(request(prompt=["Once upon"], n=2, stop="\n", seed=7, echo=False,
                                     suffix=""), targets["aggregator"], stream=True)

    assert sent.body == {"model": "up-aggregator",
                         "messages": [{"role": "user", "content": "Once upon"}],
                         "n": 2, "stop": "\n", "seed": 7, "max_completion_tokens": 16,
                         "stream": True, "stream_options": {"include_usage": True}}
    assert sent.adjusted == ["max_tokens"]  # aggregator's chat rule renames it
    assert sent.dropped == []


def test_conversion_drops_what_chat_lacks_by_the_policy(targets):
    dropped = TO_CHAT.translate(request(max_tokens=5, logprobs=2, best_of=3),
                                targets["aggregator"], stream=False)
    assert dropped.body == {"model": "up-aggregator", "max_completion_tokens": 5,
                            "messages": [{"role": "user", "content": "Say hi"}]}
    assert sorted(dropped.dropped) == ["best_of", "logprobs"]

    for name, value in (("logprobs", 2), ("best_of", 3)):
        with pytest.raises(Rejected) as refused:
            TO_CHAT.translate(request(**{name: value}), targets["strict"], stream=False)
        assert refused.value.param == name
    # model-api's chat rules take best_of, and only 1
    with pytest.raises(Rejected, match="'best_of' must be between 1 and 1, got 3"):
        TO_CHAT.translate(request(best_of=3), targets["model-api"], stream=False)


@pytest.mark.parametrize("fields,param,why", [
    ({"echo": True}, "echo", "the answer would not begin with the prompt"),
    ({"suffix": "the end"}, "suffix", "chat continues a prompt, it does not insert text"),
    ({"prompt": [1, 2, 3]}, "prompt", "token ids cannot be sent there; send the prompt as text"),
    ({"prompt": [[1], [2]]}, "prompt", "token ids cannot be sent there"),
    ({"prompt": ["a", "b"]}, "prompt", "it holds 2 prompts; send one a request"),
])
def test_conversion_refuses_what_would_change_the_answer_under_either_policy(targets, fields,
                                                                            param, why):
    for target in (targets["aggregator"], targets["strict"]):
        with pytest.raises(Rejected) as refused:
            TO_CHAT.translate(request(**fields), target, stream=False)
        assert refused.value.param == param
        assert refused.value.message.startswith(
            f"Parameter '{param}' cannot be sent to provider '{target.provider.name}' (profile "
            "'aggregator'), which speaks chat completions only: ")
        assert why in refused.value.message
