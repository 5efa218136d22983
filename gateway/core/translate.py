"""Translate: a client's request becomes the body one target expects, by its dialect's rules.

Provider differences are data: each target's `Dialect` holds compiled rules
(map, values, range, count, rename) from its profile in `providers/` and the
overrides in routes.yaml. This module is the one mechanism that applies them,
for every client API: it has no per-provider branches and reads no API's own
fields (the codec writes those). The client's payload is never changed: a
fallback to another target translates the original again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from gateway.config.compiled import Dialect, Rule
from gateway.core.errors import InvalidRequest

_DROP = object()


class Rejected(InvalidRequest):
    """The target's dialect refuses a parameter, by its rules or by the unsupported-parameter policy."""

    code = "unsupported_parameter"


def client_json(value: object) -> bytes:
    """JSON of what a client sent: a 400 for a value JSON parsers take and orjson does not
    write (an integer over 64 bits, a lone surrogate), where it is first written (the
    upstream's body, a prompt estimate), before any byte of an answer."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise InvalidRequest(f"The request holds a value the gateway cannot relay ({exc}); "
                             "send integers within 64 bits and valid Unicode.",
                             code="invalid_value") from None


@dataclass(slots=True)
class Translation:
    body: dict
    dropped: list[str] = field(default_factory=list)  # parameters not sent
    adjusted: list[str] = field(default_factory=list)  # sent with another value or name
    hide_usage: bool = False  # the client did not ask for the usage chunk the gateway asked for
    fanout: int = 1  # requests to send, each with n=1, whose choices are merged

    def encode(self) -> bytes:
        """The body, as sent."""
        return client_json(self.body)


def translate(payload: dict, dialect: Dialect, out: dict, stream: bool, owned: frozenset[str],
              known: frozenset[str]) -> Translation:
    """`out` (what the codec wrote: the model and the API's own fields) with every other
    parameter of `payload` ruled by `dialect`. Rejected if the dialect refuses one.

    `owned` are the names the codec wrote or the request path owns (never ruled here);
    `known` the API's documented parameters: one the rules do not list is unsupported,
    while an unknown extra follows the profile's `extras` policy.
    """
    result = Translation(out)
    renamed: list[tuple[tuple[str, ...], object, str]] = []
    for name, value in payload.items():
        if value is None or name in owned:
            continue  # null means "not set" for every parameter
        rule = dialect.rules.get(name)
        if rule is None or not rule.supported:
            if rule is None and name not in known and dialect.profile.extras == "pass":
                out[name] = value
            elif dialect.unsupported == "reject":
                raise _rejected(dialect, name, "is not supported")
            else:
                result.dropped.append(name)
            continue
        value = _apply(rule, name, value, dialect, result)
        if value is _DROP:
            continue
        if rule.rename is None:
            out[name] = value
        else:
            renamed.append((rule.rename, value, name))
    for path, value, source in renamed:
        if _place(out, path, value):
            result.adjusted.append(source)
        else:  # the client also sent the upstream's own name: that one wins
            result.dropped.append(source)
    if stream:
        out["stream"] = True
        _stream_options(payload.get("stream_options") or {}, dialect, result)
    elif payload.get("stream") is False:
        out["stream"] = False
    return result


def _apply(rule: Rule, name: str, value, dialect: Dialect, result: Translation):
    """One parameter through its rule: map, values, range, count. `_DROP` if it is not to be sent."""
    original = value
    typed = type(value) is dict  # objects (response_format) are ruled by their `type`
    if rule.table is not None:
        key = value.get("type") if typed else value
        if _hashable(key) and key in rule.table:
            mapped = rule.table[key]
            if mapped is None:
                result.dropped.append(name)
                return _DROP
            if mapped != key:
                value = {"type": mapped} if typed else mapped
    if rule.values is not None:
        key = value.get("type") if typed else value
        if not _hashable(key) or key not in rule.values:
            if rule.on_value == "reject":
                allowed = ", ".join(sorted(map(str, rule.values)))
                raise _rejected(dialect, name, f"does not accept {key!r} (it accepts {allowed})")
            result.dropped.append(name)
            return _DROP
    if (rule.low is not None or rule.high is not None) and type(value) in (int, float):
        low = rule.low if rule.low is not None else value
        high = rule.high if rule.high is not None else value
        if not low <= value <= high:
            if rule.on_range == "fanout":
                result.fanout = value
                result.adjusted.append(name)
                return _DROP
            if rule.on_range == "reject":
                raise _rejected(dialect, name, f"must be between {_num(rule.low)} and "
                                               f"{_num(rule.high)}, got {value}")
            if rule.on_range == "drop":
                result.dropped.append(name)
                return _DROP
            value = min(max(value, low), high)
            if type(original) is int:
                value = int(value)
    if rule.max_items is not None and type(value) in (str, list):
        count = 1 if type(value) is str else len(value)
        if count > rule.max_items:
            if rule.on_count == "reject":
                raise _rejected(dialect, name, f"takes at most {rule.max_items} items, got {count}")
            if rule.on_count == "drop" or rule.max_items == 0:
                result.dropped.append(name)
                return _DROP
            value = value[:rule.max_items]
    if value is not original and value != original:
        result.adjusted.append(name)
    return value


def _place(out: dict, path: tuple[str, ...], value) -> bool:
    """Set `path` in `out` unless it is already set; nested objects are copied, never changed."""
    head, rest = path[0], path[1:]
    if not rest:
        if head in out:
            return False
        out[head] = value
        return True
    inner = out.get(head)
    inner = dict(inner) if type(inner) is dict else {}
    if not _place(inner, rest, value):
        return False
    out[head] = inner
    return True


def _stream_options(options: dict, dialect: Dialect, result: Translation) -> None:
    """The gateway always wants usage in a stream; the client sees it only if it asked."""
    asked = options.get("include_usage") is True
    mode = dialect.profile.stream_usage
    if mode == "on_request":
        result.body["stream_options"] = {**options, "include_usage": True}
        result.hide_usage = not asked
    elif mode == "always":
        result.hide_usage = not asked
    elif options:
        result.dropped.append("stream_options")


def _rejected(dialect: Dialect, name: str, why: str) -> Rejected:
    return Rejected(f"Parameter '{name}' {why} for provider '{dialect.provider}' "
                    f"(profile '{dialect.profile.name}').", param=name)


def _hashable(value) -> bool:
    return type(value) in (str, int, float, bool) or value is None


def _num(value: float | None) -> str:
    if value is None:
        return "any"
    return str(int(value)) if float(value).is_integer() else str(value)
