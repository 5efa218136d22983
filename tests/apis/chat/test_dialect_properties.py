"""Property: for any valid OpenAI request, what each profile's upstream receives keeps that profile's limits.

Hypothesis generates requests (ranges wider than any provider allows, every
message shape, extras); the checker below reads the profile's rules on its own,
independently of translate.py, and also asserts that nothing the client sent
disappears without being reported.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.apis.chat.schema import KNOWN_PARAMS
from gateway.apis.chat.surface import CODEC
from gateway.apis.chat.validate import validate_chat
from gateway.config.compiled import Target
from gateway.core.translate import Rejected
from tests.profiles import PROFILES, target

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

text = st.text(max_size=12)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("image_url"),
                           "image_url": st.fixed_dictionaries({"url": st.just("https://x/a.png")})}))
content = st.one_of(text, st.lists(part, min_size=1, max_size=3))
message = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer", "user"]),
                           "content": content}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.one_of(st.none(), text)},
                          optional={"reasoning_content": text, "reasoning": text}),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": text, "content": text}),
)
floats = st.floats
PARAMS = {
    "temperature": floats(0, 5), "top_p": floats(0, 1.5), "n": st.integers(1, 300),
    "stop": st.one_of(text, st.lists(text, max_size=40)),
    "max_tokens": st.integers(1, 10**6), "max_completion_tokens": st.integers(1, 10**6),
    "presence_penalty": floats(-3, 3), "frequency_penalty": floats(-3, 3),
    "logit_bias": st.dictionaries(st.integers(0, 999).map(str), floats(-100, 100), max_size=2),
    "logprobs": st.booleans(), "top_logprobs": st.integers(0, 40), "user": text,
    "seed": st.integers(-(2**63), 2**63 - 1), "tools": st.just([TOOL]),
    "tool_choice": st.sampled_from(["none", "auto", "required",
                                    {"type": "function", "function": {"name": "f"}}]),
    "parallel_tool_calls": st.booleans(),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"},
                                        {"type": "json_schema",
                                         "json_schema": {"name": "x", "schema": {}}}]),
    "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh",
                                         "ultra"]),
    "verbosity": st.sampled_from(["low", "high"]), "modalities": st.just(["text"]),
    "top_k": st.integers(-1, 100), "min_p": floats(0, 1), "repetition_penalty": floats(0.5, 2),
    "best_of": st.integers(1, 3), "chat_template_kwargs": st.just({"enable_thinking": True}),
    "x_vendor_extra": text, "temperature_unit": st.just("kelvin"),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
}
requests = st.fixed_dictionaries(
    {"model": st.just("alias"), "messages": st.lists(message, min_size=1, max_size=4)},
    optional={**PARAMS, "stream": st.booleans()})


def within(rule, value) -> bool:
    """The profile's limits for one value, read straight from its rule."""
    key = value.get("type") if type(value) is dict else value
    if rule.values is not None and key not in rule.values:
        return False
    if type(value) in (int, float):
        if rule.low is not None and value < rule.low or rule.high is not None and value > rule.high:
            return False
    if rule.max_items is not None and type(value) in (str, list):
        if (1 if type(value) is str else len(value)) > rule.max_items:
            return False
    return True


def check(request: dict, tgt: Target) -> None:
    dialect = tgt.dialect
    profile = dialect.profile
    stream = request.get("stream") is True
    try:
        result = CODEC.translate(request, tgt, stream)
    except Rejected as rejection:
        rule = dialect.rules.get(rejection.param)
        refused_by_rule = rule is not None and rule.supported and not within(rule, request[
            rejection.param])
        refused_by_policy = dialect.unsupported == "reject" and (
            rule is None or not rule.supported)
        assert refused_by_rule or refused_by_policy, rejection.message
        return
    body = result.body
    orjson.dumps(body)  # it can be sent
    assert body["model"] == "upstream-model"
    # Every parameter sent is one the upstream takes, within the profile's limits.
    by_upstream_name: dict[str, list] = {}
    for name, rule in dialect.rules.items():
        if rule.supported:
            by_upstream_name.setdefault(rule.rename[0] if rule.rename else name, []).append(rule)
    for name, value in body.items():
        if name in ("model", "messages", "stream", "stream_options"):
            continue
        if name in by_upstream_name:
            assert any(within(rule, value) for rule in by_upstream_name[name]), (name, value)
        else:
            assert profile.extras == "pass" and name not in KNOWN_PARAMS \
                and name not in dialect.rules, f"{name} sent to {profile.name}"
    # Reasoning in past assistant messages only under the name this upstream takes.
    for sent in body["messages"]:
        present = {"reasoning", "reasoning_content"} & set(sent)
        assert present <= ({profile.reasoning_in_messages} - {None}), present
    # The gateway always asks a streaming upstream for usage, where that is how it works.
    if stream and profile.stream_usage == "on_request":
        assert body["stream_options"]["include_usage"] is True
    if not stream:
        assert "stream_options" not in body
    # Nothing disappears without a word: each parameter is sent, reported, or fanned out.
    for name, value in request.items():
        if name in ("model", "messages", "stream", "stream_options") or value is None:
            continue
        rule = dialect.rules.get(name)
        sent_as = rule.rename[0] if rule is not None and rule.rename else name
        assert sent_as in body or name in result.dropped or result.fanout > 1, name


@pytest.mark.parametrize("unsupported", ["drop", "reject"])
@pytest.mark.parametrize("profile", sorted(p for p in PROFILES if "chat" in PROFILES[p].apis))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests)
def test_every_profile_keeps_its_own_limits(profile, unsupported, request):
    validate_chat(orjson.dumps(request))  # a valid OpenAI request, as the gateway would accept it
    check(request, target(profile, unsupported))
