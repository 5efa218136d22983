"""Adapt: put the upstream's answer back into the shape the client expects.

- `model` is the alias the client asked for; the upstream's own name goes in a header.
- Reasoning text is in the field the route chose (`reasoning_content`, `reasoning` or
  both), whichever the upstream used.
- Finish reasons stay within OpenAI's set.
- Usage is always in a complete answer; in a stream, only if the client asked for it.

Streams are handled on bytes: a few regex passes per upstream read rewrite every
event at once, and JSON is parsed only for the rare event that must change shape
(the usage event, or reasoning when both names are wanted). Where the C helper
(`_events.c`) was built, a read's events are rewritten in one pass of it: text
deltas, a finish reason in OpenAI's set, the usage event (which alone is parsed,
here) and `[DONE]`; it learns the upstream's model key from the first event. It
stops at the first event that needs more (a reason to map, a reasoning key to
rename, a provider key, a model written otherwise, a second usage), and only the
rest take the passes here.
"""

from __future__ import annotations

import functools
import re
import time

import orjson

from gateway.apis.chat.event_bytes import (
    check_json,
    done_lines,
    each_event,
    each_match,
    has_done,
    is_json,
    matches,
)
from gateway.apis.relayed import encoded, load_answer, scrub
from gateway.config import Route
from gateway.config.compiled import Dialect
from gateway.core.tally import TEXT, Tally, charged
from gateway.core.tokens import text_tokens
from gateway.upstream.base import ResponseTooLarge

try:  # built by hatch_build.py where a C compiler is found; the same output without it
    from gateway.apis.chat import _events
except ImportError:  # pragma: no cover - a machine with no compiler
    _events = None  # type: ignore[assignment]  # the module, or None where it was not built

# Only a key can match `"name"\s*:` : quotes inside a string are escaped, and a string
# value is never followed by `:`. A literal first lets the regex engine skip ahead fast.
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)"')
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_FINISH = re.compile(
    rb'"finish_reason"\s*:\s*"(?!(?:stop|length|tool_calls|content_filter|function_call)")'
    rb'([^"\\]*)"')
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
_REASONING = ("reasoning_content", "reasoning")


class Answer:
    """How one attempt's answer is adapted: the same for a whole answer and for a stream.

    Another client API whose answers have this envelope (an object with `model`,
    `choices` and `usage`; events of that shape) adapts its answers with a subclass
    that reads its choices (`_choices`) and names its chunks (`CHUNK`).
    """

    __slots__ = ("alias", "reasoning", "upstream_reasoning", "finish_map", "prompt_estimate",
                 "secrets")
    KIND = "a chat completion"  # what the upstream answers, for the error when it does not
    CHUNK = {"id": "chatcmpl-gateway", "object": "chat.completion.chunk"}  # the gateway's own
    TEXT = TEXT  # where a stream's text is, for its tally

    def __init__(self, route: Route, dialect: Dialect, prompt_estimate: int,
                 model: str | None = None, secrets: tuple[str, ...] = ()) -> None:
        self.alias = model or route.alias  # what the client asked for (a wildcard's full name)
        self.secrets = encoded(secrets)  # the provider's keys: never relayed
        self.reasoning = route.reasoning_field
        self.upstream_reasoning = dialect.profile.reasoning_field
        self.finish_map = dialect.profile.finish_reasons  # the upstream's words for OpenAI's
        self.prompt_estimate = prompt_estimate  # tokens, from admission: when no usage says

    def finish_reason(self, reason):
        if reason is None or reason in FINISH_REASONS:
            return reason
        return self.finish_map.get(reason, "stop")

    def fix_reasoning(self, holder: dict) -> None:
        """One message or delta: its reasoning text under the name (or names) clients get."""
        if "reasoning_content" not in holder and "reasoning" not in holder:
            return  # most answers: no reasoning
        present = [f for f in _REASONING if holder.get(f) is not None]
        if not present or (present == [self.reasoning]):
            return
        text = holder[present[0]]
        for f in _REASONING:
            holder.pop(f, None)
        if self.reasoning == "both":
            holder["reasoning_content"] = holder["reasoning"] = text
        else:
            holder[self.reasoning] = text

    def stream(self, show_usage: bool = True, max_event: int = 64 * 2**20) -> StreamAdapter:
        return StreamAdapter(self, show_usage, max_event)

    def completion(self, data: bytes) -> tuple[bytes, dict, str | None]:
        """The whole answer for the client, its usage, and the upstream's model name."""
        answer, usage, upstream_model = self.normalized(data)
        return orjson.dumps(answer), usage, upstream_model

    def normalized(self, data: bytes) -> tuple[dict, dict, str | None]:
        """The upstream's whole answer in the client's shape, its usage, the upstream's model name."""
        answer = load_answer(data, self.secrets, "choices", self.KIND)
        upstream_model = answer.get("model")
        answer["model"] = self.alias
        usage = answer.get("usage")
        if type(usage) is dict:
            self._choices(answer["choices"], False)
        else:  # no usage: the text is counted, as a stream's is (gateway/core/tally.py)
            produced = self._choices(answer["choices"], True)
            prompt = self.prompt_estimate
            completion = max(1, round(text_tokens("".join(produced).encode(errors="replace"))))
            usage = answer["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                       "total_tokens": prompt + completion, "estimated": True}
        return answer, usage, upstream_model if type(upstream_model) is str else None

    def _choices(self, choices: list, texts: bool) -> list[str]:
        """Each choice's finish reason and reasoning in the client's terms; the text they hold,
        if `texts` (for an answer without usage)."""
        produced: list[str] = []
        for choice in choices:
            if type(choice) is not dict:
                continue
            choice["finish_reason"] = self.finish_reason(choice.get("finish_reason"))
            message = choice.get("message")
            if type(message) is dict:
                self.fix_reasoning(message)
                if not texts:
                    continue
                produced += (str(message.get(k) or "") for k in ("content", *_REASONING))
                calls = message.get("tool_calls")
                for call in calls if type(calls) is list else ():
                    function = call.get("function") if type(call) is dict else None
                    if type(function) is dict:
                        produced += (str(function.get(k) or "") for k in ("name", "arguments"))
        return produced

    def usage_event(self, usage: dict) -> bytes:
        """A usage-only event of the gateway's own, in the client's chunk shape."""
        event = {**self.CHUNK, "created": int(time.time()), "model": self.alias, "choices": [],
                 "usage": usage}
        return b"data: " + orjson.dumps(event) + b"\n\n"


class StreamAdapter:
    """Splits an upstream SSE byte stream into whole events and rewrites them for the client."""

    __slots__ = ("_answer", "_keys", "_literal", "_max_event", "_model", "_plain", "_rename",
                 "_reported", "_rest", "_seen", "_show_usage", "_usages", "done", "finished", "tally",
                 "truncated", "upstream_model", "usage")

    def __init__(self, answer: Answer, show_usage: bool = True,
                 max_event: int = 64 * 2**20) -> None:
        self._answer = answer
        self._max_event = max_event  # a partial event is held in memory: this much at most
        self._literal = b'"model":' + orjson.dumps(answer.alias)
        # A regex replacement template: backslashes doubled so the alias is taken literally.
        self._model = self._literal.replace(b"\\", b"\\\\")
        self._seen: bytes | None = None  # the upstream's `"model":"..."`, as it wrote it
        # How the upstream writes `"finish_reason":"` and `"usage":{` (with a space after the
        # colon or not), learned from its first finish_reason key: one search a read each.
        self._keys: tuple[bytes, bytes] | None = None
        # What makes an event other than plain for the C helper (gateway/apis/chat/_events.c);
        # None where it cannot take this route's answers, or is not built.
        self._plain = None if _events is None else _markers(
            answer.secrets, answer.reasoning, answer.upstream_reasoning)
        self._rename = None
        if answer.reasoning not in ("both", answer.upstream_reasoning):
            self._rename = _renaming(answer.upstream_reasoning, answer.reasoning)
        self._show_usage = show_usage
        self._rest = b""
        self.done = False
        self.finished = False  # a choice said why it ended: the answer is whole
        self.truncated = False  # the upstream stopped in the middle of an event
        self.tally = Tally(answer.TEXT)  # what the client was sent: its charge if no usage comes
        # In the read being rewritten: its usage events so far, and how many of them had been
        # read when the last that gave a completion count was (0: none has).
        self._usages = self._reported = 0
        self.upstream_model: str | None = None
        self.usage: dict | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Whole events completed by `chunk`, rewritten; a partial event waits for the next chunk."""
        data = self._rest + chunk if self._rest else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
            if data.endswith(b"\r"):  # maybe half of a \r\n
                self._rest = data
                return b""
        end = data.rfind(b"\n\n")
        if end < 0:
            self._rest = data
            self._check_size()
            return b""
        self._rest = data[end + 2:]
        self._check_size()
        return self._rewrite(data[:end + 2])

    def _check_size(self) -> None:
        if len(self._rest) > self._max_event:
            raise ResponseTooLarge(f"upstream sent an event over the {self._max_event}-byte limit")

    def stream_error(self, error) -> bytes | None:
        """Chat's streams end as their surface says (an error event, then `[DONE]`)."""
        return None

    def finish(self) -> bytes:
        """What is left when the upstream ends: its last event if it lacked the blank line, and
        the usage the client asked for if the upstream sent none. A cut-off event is dropped.

        The upstream's `[DONE]` is never passed on: the relay ends every stream with its own,
        after this, or after an error event if `truncated`.
        """
        rest, self._rest = self._rest.strip(), b""
        tail = b""
        if rest:
            if has_done(rest):
                self.done = True
            elif rest.startswith(b"data:") and is_json(rest[5:]):
                tail = self._rewrite(rest + b"\n\n")
            else:
                self.truncated = True
        if self.usage is None and self._show_usage and not self.truncated:
            tail += self._estimated_usage()
        return tail

    def _rewrite(self, events: bytes) -> bytes:
        markers = self._plain
        if markers is None:  # the helper cannot take this route's answers, or is not built
            return self._rewrite_events(events)
        out, stop, flags, usage, learned = _events.rewrite(
            events, self._seen or b"", self._literal, markers, self._show_usage)
        if learned is not None:  # the model key of the stream's first event, as the upstream wrote it
            self._seen = events[learned[0]:learned[1]]
            self.upstream_model = events[learned[2]:learned[3]].decode(errors="replace")
        if flags:
            self.finished = self.finished or bool(flags & 1)
            self.done = self.done or bool(flags & 2)
        if usage is not None:
            out, counted = self._plain_usage(out, events, usage)
            self.tally.add(events[counted:stop])
        elif stop:
            self.tally.add(events if stop == len(events) else events[:stop])
        if stop == len(events):
            return out
        return out + self._rewrite_events(events[stop:])

    def _plain_usage(self, out: bytes, events: bytes, usage: tuple[int, int, int]
                     ) -> tuple[bytes, int]:
        """The helper's output with the usage event it found as `_usage_event` has it (the
        helper kept it if the client asked for usage, else left it out), and where the text
        the upstream's count does not cover starts in `events`."""
        start, end, at = usage
        try:
            data = orjson.loads(memoryview(events)[start + 5:end])
        except orjson.JSONDecodeError:
            data = None
        self._usages = self._reported = 0
        changed = self._usage_event(data if type(data) is dict else None)
        counted = end if self._reported else 0
        if self._show_usage or changed == {}:
            return out, counted  # as the helper left it
        event = events[start:end]  # as the helper would have written it:
        if self._seen is not None:
            event = event.replace(self._seen, self._literal)
        if changed is not None:  # an answer's event that carried the usage too: kept, less it
            kept = orjson.loads(memoryview(event)[5:])
            del kept["usage"]
            event = b"data: " + orjson.dumps(kept) + b"\n\n"
        return b"".join((out[:at], event, out[at:])), counted

    def _learn_forms(self, events: bytes) -> None:
        """How the upstream writes its model and its keys, from the first (scrubbed) events
        that show them."""
        if self.upstream_model is None:
            match = _MODEL.search(events)
            if match is not None:
                self.upstream_model = match.group(1).decode(errors="replace")
                self._seen = match.group(0)
        if self._keys is None and b'"finish_reason"' in events:
            self._keys = _key_forms(events)

    def _rewrite_events(self, events: bytes) -> bytes:
        """Whatever the events are: the passes below, each over all of them."""
        whole = check_json(events)  # every event `data: {...}`, a `[DONE]` only at the end
        events = scrub(events, self._answer.secrets)
        raw = events
        self._learn_forms(events)
        parts = events.split(self._seen) if self._seen is not None else None
        if parts is not None and len(parts) - 1 == events.count(b'"model"'):
            # Every event names the same model the same way: a split and a join, 10x a regex.
            events = self._literal.join(parts)
        else:
            events = _MODEL.sub(self._model, events)
        finish, usage = self._keys or _ANY_FORMS
        at = events.find(finish)
        if at < 0 and self._keys is None:
            at = events.find(_FINISH_SPACED)
        if at >= 0:  # a reason, not just the nulls of every event (usually in the last one)
            self.finished = True
            events = each_match(events, _FINISH.finditer(events, at), self._finish)
        if self._answer.reasoning == "both":
            if b'"reasoning' in events:
                events = each_event(events, matches(_REASONING_KEY, events), self._both_names)
        elif self._rename is not None and b'"' + self._answer.upstream_reasoning.encode() in events:
            if b'"' + self._answer.reasoning.encode() + b'"' in events:  # upstream sent both names
                events = each_event(events, matches(_REASONING_KEY, events), self._both_names)
            else:
                events = self._rename[0].sub(self._rename[1], events)
        counted = raw
        at = events.find(usage)
        if at >= 0:  # a usage object, not the `"usage": null` of every chunk
            self._usages = self._reported = 0
            events = each_event(events, matches(_USAGE, events, at), self._usage_event)
            if self._reported:  # the upstream's count covers its event and those before it
                counted = raw[_after_usage(raw, raw.find(usage), self._reported):]
        self.tally.add(counted)
        if whole:  # a `[DONE]` can only be the last event
            if events.endswith(_DONE_EVENT):
                self.done = True
                events = events[:-len(_DONE_EVENT)]
        elif b"[DONE]" in events:
            events = each_event(events, done_lines(events), self._done)
        return events

    def _finish(self, match: re.Match) -> bytes:
        reason = self._answer.finish_reason(match.group(1).decode(errors="replace"))
        return b'"finish_reason":"' + reason.encode() + b'"'

    def _done(self, data: dict | None) -> dict:
        self.done = True
        return {}

    def _usage_event(self, data: dict | None) -> dict | None:
        self._usages += 1
        usage = data.get("usage") if data else None
        if data is None or type(usage) is not dict:
            return None
        self.usage = usage
        if self.tally.usage_seen(usage):
            self._reported = self._usages
        if self._show_usage:
            return None
        if not data.get("choices"):
            return {}  # the usage-only event the client did not ask for: drop it
        del data["usage"]
        return data

    def _both_names(self, data: dict | None) -> dict | None:
        for choice in (data or {}).get("choices") or ():
            if type(choice) is dict and type(choice.get("delta")) is dict:
                self._answer.fix_reasoning(choice["delta"])
        return data

    def _estimated_usage(self) -> bytes:
        """The usage event a client asked for when the upstream sent none: what it was sent,
        counted as a client that leaves is charged (gateway/core/tally.py)."""
        prompt, completion = charged([self.tally], self._answer.prompt_estimate)
        self.usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion, "estimated": True}
        return self._answer.usage_event(self.usage)


_REASONING_KEY = re.compile(rb'"reasoning(?:_content)?"\s*:')
_KEY_FORM = re.compile(rb'"finish_reason"(\s*:\s*)')
_ANY_FORMS = (b'"finish_reason":"', b'"usage"')  # before the form is known
_FINISH_SPACED = b'"finish_reason": "'
_DONE_EVENT = b"data: [DONE]\n\n"


def _key_forms(events: bytes) -> tuple[bytes, bytes] | None:
    """`"finish_reason":"` and `"usage":{` as this upstream writes them: its serializer puts
    the same space (or none) after every colon of its events."""
    match = _KEY_FORM.search(events)
    if match is None:
        return None
    colon = match.group(1)
    return b'"finish_reason"' + colon + b'"', b'"usage"' + colon + b"{"


@functools.lru_cache(maxsize=64)
def _renaming(source: str, name: str) -> tuple[re.Pattern, bytes]:
    """The regex and template that write the upstream's reasoning key as the client's."""
    return (re.compile(rb'"' + re.escape(source.encode()) + rb'"(\s*:)'),
            b'"' + name.encode() + rb'"\1')


@functools.lru_cache(maxsize=1024)
def _markers(secrets: tuple[bytes, ...], reasoning: str,
             upstream_reasoning: str) -> tuple[bytes, ...] | None:
    """What makes an event other than plain for the C helper, besides the model, finish reason
    and usage keys it looks at itself; None where the helper cannot take them all. The same
    few on every request of a route."""
    if any(b"\n" in s for s in secrets):  # a key that could span two events: scrubbed whole
        return None
    markers = [*secrets]
    if reasoning == "both":
        markers.append(b'"reasoning')
    elif reasoning != upstream_reasoning:  # either name: the rename looks at both in a read
        markers += (b'"' + upstream_reasoning.encode(), b'"' + reasoning.encode() + b'"')
    if len(markers) > _events.MAX_MARKERS or any(len(m) < 2 for m in markers):
        return None
    return tuple(markers)


def _after_usage(events: bytes, at: int, count: int) -> int:
    """Where the event after the `count`-th with a usage object from `at` starts: as
    `each_event` finds them, one an event."""
    end = 0
    for match in _USAGE.finditer(events, at):
        if match.start() < end:
            continue  # the same event as the previous match
        found = events.find(b"\n\n", match.end())
        end = len(events) if found < 0 else found + 2
        count -= 1
        if count == 0:
            break
    return end
