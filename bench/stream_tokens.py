"""How close the gateway's count of an abandoned stream is to a real tokenizer's.

    python bench/stream_tokens.py [--streams 300] [--seed 1]
    python bench/stream_tokens.py --fit              # the weights of gateway/core/tally.py
    python bench/stream_tokens.py --test-data tests/tokens.json

A client that leaves a stream before the upstream's usage arrives is charged
what the gateway counted on the way (gateway/core/tally.py). This script measures
that count against real token counts: it tokenizes a varied corpus (English
prose, also as reasoning; Python from the standard library; this repo's
markdown; JSON tool-call arguments; figures; Chinese; Russian; bench/corpus/)
with OpenAI's o200k_base and cl100k_base (js-tiktoken, run by node;
installed into bench/.node with npm on first use), streams the tokens as an
upstream would, one token an event (vLLM, OpenAI) or 3 to 8 an event (an
upstream that batches), cuts each stream at a random point as a client that
leaves would, and feeds the events the client got through the gateway's own
StreamAdapter in random-sized reads. The error is the count over the tokens
really sent, per kind and in total; "old" is the count before issue 18
(events less two).

Needs node and npm on PATH. Not a timed test: a report.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.apis.chat.adapt import Answer, StreamAdapter  # noqa: E402
from gateway.config.compiled import Dialect, Profile, Route  # noqa: E402
from gateway.core.tokens import WEIGHTS, char_classes  # noqa: E402

NODE_PREFIX = ROOT / "bench" / ".node"
JS_TIKTOKEN = "js-tiktoken@1.0.21"
ENCODINGS = ("o200k_base", "cl100k_base")
MODES = {"1/event": (1, 1), "3-8/event": (3, 8)}
WORDS = ("alpha beta report invoice Paris Berlin Tokyo weather forecast user account order "
         "status pending shipped delivered price total discount customer email phone street "
         "search query results limit offset sort ascending descending temperature celsius "
         "fahrenheit meeting calendar reminder title description priority high low").split()


def corpus(rng: random.Random) -> dict[str, tuple[str, str]]:
    """Kind -> (text, the delta field it streams in)."""
    here = ROOT / "bench" / "corpus"
    prose = (here / "prose.txt").read_text()
    stdlib = Path(sysconfig.get_paths()["stdlib"])  # code that does not change with this repo
    code = "\n\n".join((stdlib / name).read_text()
                       for name in ("textwrap.py", "shlex.py", "json/encoder.py", "json/decoder.py"))
    markdown = "\n\n".join((ROOT / p).read_text() for p in ("README.md", "docs/routing.md"))
    return {
        "prose": (prose, "content"),
        "reasoning": (prose, "reasoning_content"),
        "code": (code, "content"),
        "markdown": (markdown, "content"),
        "tool arguments": (" ".join(json.dumps(_arguments(rng)) for _ in range(150)), "arguments"),
        "numbers": ("\n".join(_numbers(rng) for _ in range(300)), "content"),
        "chinese": ((here / "chinese.txt").read_text(), "content"),
        "russian": ((here / "russian.txt").read_text(), "content"),
    }


def _arguments(rng: random.Random) -> dict:
    """A tool call's arguments, as a model writes them."""
    def value(depth: int):
        pick = rng.random()
        if pick < 0.4:
            return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
        if pick < 0.55:
            return rng.randint(0, 100_000)
        if pick < 0.65:
            return round(rng.uniform(-1000, 1000), rng.randint(1, 4))
        if pick < 0.7:
            return rng.random() < 0.5
        if pick < 0.85 and depth < 2:
            return [value(depth + 1) for _ in range(rng.randint(1, 4))]
        if depth < 2:
            return {rng.choice(WORDS): value(depth + 1) for _ in range(rng.randint(1, 3))}
        return rng.choice(WORDS)
    return {f"{rng.choice(WORDS)}_{rng.choice(WORDS)}": value(0) for _ in range(rng.randint(1, 5))}


def _numbers(rng: random.Random) -> str:
    """A line of figures: a table row, a date and amounts, coordinates."""
    pick = rng.randrange(4)
    if pick == 0:
        return "| " + " | ".join(f"{rng.randint(0, 99_999):,}" for _ in range(5)) + " |"
    if pick == 1:
        return (f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}: {rng.randint(1, 40)} "
                f"items at ${rng.uniform(1, 500):.2f} = ${rng.uniform(10, 20_000):.2f}")
    if pick == 2:
        return f"x = {rng.uniform(-10, 10):.5f}, y = {rng.uniform(-1, 1):.3e}, n = {rng.randint(0, 10**9)}"
    return " ".join(str(rng.randint(0, 999)) for _ in range(rng.randint(4, 12)))


def tokenize(texts: list[str], encoding: str) -> list[list[bytes]]:
    """Each text's tokens, as the bytes each stands for."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        sys.exit("bench/stream_tokens.py needs node and npm on PATH")
    if not (NODE_PREFIX / "node_modules" / "js-tiktoken").is_dir():
        subprocess.run(["npm", "install", "--prefix", str(NODE_PREFIX), "--no-save", "--no-audit",
                        "--no-fund", JS_TIKTOKEN], check=True, stdout=subprocess.DEVNULL)
    done = subprocess.run([node, str(ROOT / "bench" / "tokenize.cjs"), str(NODE_PREFIX), encoding],
                          input=json.dumps(texts).encode(), capture_output=True, check=True)
    return [[bytes.fromhex(t) for t in tokens] for tokens in json.loads(done.stdout)]


def events_of(tokens: list[bytes], per_event: tuple[int, int], rng: random.Random) -> list[tuple[str, int]]:
    """The text of each event and the tokens it carries. Bytes that end inside a character
    wait for the next token, as vLLM's detokenizer holds them."""
    out, held, waiting, i = [], b"", 0, 0
    while i < len(tokens):
        take = rng.randint(*per_event)
        held, waiting, i = held + b"".join(tokens[i:i + take]), waiting + len(tokens[i:i + take]), i + take
        try:
            text = held.decode()
        except UnicodeDecodeError:
            continue
        out.append((text, waiting))
        held, waiting = b"", 0
    return out


def sse(kind_field: str, texts: list[str], rng: random.Random) -> bytes:
    """The stream an upstream writes: a role event, then one event per text. Half the streams
    are written compact in raw UTF-8 (vLLM, OpenAI), half by Python's json (`\\uXXXX`, spaces)."""
    dumps = (lambda d: orjson.dumps(d)) if rng.random() < 0.5 else (lambda d: json.dumps(d).encode())
    both_names = rng.random() < 0.5  # vLLM writes reasoning under both names

    def event(delta: dict) -> bytes:
        return b"data: " + dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                  "created": 1, "model": "m", "choices": [
                                      {"index": 0, "delta": delta, "finish_reason": None}]}) + b"\n\n"

    out = [event({"role": "assistant", "content": ""})]
    if kind_field == "arguments":
        out.append(event({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                          "function": {"name": "lookup", "arguments": ""}}]}))
    for text in texts:
        if kind_field == "arguments":
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}
        elif kind_field == "reasoning_content" and both_names:
            delta = {"reasoning": text, "reasoning_content": text}
        else:
            delta = {kind_field: text}
        out.append(event(delta))
    return b"".join(out)


def counted(stream: bytes, rng: random.Random) -> int:
    """What the gateway charges for `stream`, fed to its StreamAdapter in random-sized reads."""
    profile = Profile(name="bench", description="", transport="http", apis={"chat": "/chat/completions"},
                      auth_header="authorization", auth_scheme="Bearer")
    adapter = StreamAdapter(Answer(Route("m", "", ()), Dialect(profile, "bench", {}, "drop"), 0),
                            show_usage=False)
    at = 0
    while at < len(stream):
        size = rng.randint(1, 600)
        adapter.feed(stream[at:at + size])
        at += size
    return adapter.tally.completion_tokens()


def simulate(tokens: list[bytes], kind_field: str, per_event: tuple[int, int], streams: int,
             rng: random.Random) -> list[tuple[int, int, int]]:
    """(tokens sent, tokens counted, the old count) for `streams` streams cut at random."""
    starts = [i for i, t in enumerate(tokens) if t and not 0x80 <= t[0] < 0xC0]  # a character's start
    cyclic = tokens * 3  # long windows wrap around
    results = []
    for _ in range(streams):
        start = rng.choice(starts)
        events = events_of(cyclic[start:start + rng.randint(20, 600)], per_event, rng)
        sent = events[:rng.randint(1, len(events))]  # where the client left
        stream = sse(kind_field, [text for text, _ in sent], rng)
        old = max(0, stream.count(b"\n\n") - 2)  # issue 18's "events less two"
        results.append((sum(n for _, n in sent), counted(stream, rng), old))
    return results


def fit(texts: dict[str, list[bytes]], rng: random.Random) -> dict[str, float]:
    """Tokens per character of each class, by least squares over 100-token windows, the same
    number from each kind: what WEIGHTS is rounded from."""
    names = list(WEIGHTS)
    rows = []
    for tokens in texts.values():
        for _ in range(300):
            at = rng.randrange(max(1, len(tokens) - 100))
            window = tokens[at:at + 100]
            classes = char_classes(b"".join(window).decode(errors="ignore").encode())
            rows.append(([classes[n] for n in names], len(window)))
    size = len(names)
    matrix = [[sum(r[0][i] * r[0][j] for r in rows) for j in range(size)]
              + [sum(r[0][i] * r[1] for r in rows)] for i in range(size)]
    for i in range(size):  # Gauss-Jordan on the normal equations
        pivot = max(range(i, size), key=lambda r: abs(matrix[r][i]))
        matrix[i], matrix[pivot] = matrix[pivot], matrix[i]
        for r in range(size):
            if r != i and matrix[i][i]:
                factor = matrix[r][i] / matrix[i][i]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[i], strict=True)]
    return {n: matrix[i][size] / matrix[i][i] if matrix[i][i] else 0.0 for i, n in enumerate(names)}


def report(label: str, results: list[tuple[int, int, int]]) -> str:
    sent = sum(r[0] for r in results)
    total = sum(r[1] for r in results) / sent - 1
    old = sum(r[2] for r in results) / sent - 1
    long = [r[1] / r[0] - 1 for r in results if r[0] >= 20]
    mean = sum(abs(e) for e in long) / len(long)
    worst = max(long, key=abs)
    return (f"| {label} | {len(results)} | {sent:,} | {total:+.1%} | {mean:.1%} | {worst:+.0%} "
            f"| {old:+.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--streams", type=int, default=300, help="per kind, mode and tokenizer")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fit", action="store_true", help="fit WEIGHTS to o200k_base and stop")
    parser.add_argument("--test-data", type=Path, metavar="PATH",
                        help="write the o200k_base tokens the tests stream (tests/tokens.json)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kinds = corpus(rng)
    if args.test_data:
        texts = {"prose": kinds["prose"][0], "arguments": kinds["tool arguments"][0]}
        tokens = tokenize(list(texts.values()), "o200k_base")
        pieces = {kind: [t.decode() for t in found[:400]] for kind, found in zip(texts, tokens, strict=True)}
        args.test_data.write_text(json.dumps({"encoding": "o200k_base", **pieces}, indent=0) + "\n")
        return
    if args.fit:
        tokens = tokenize([text for text, _ in kinds.values()], "o200k_base")
        fitted = fit(dict(zip(kinds, tokens, strict=True)), rng)
        print(", ".join(f"{name}: {value:.3f}" for name, value in fitted.items()))
        return
    print("| tokenizer, tokens an event, kind | streams | tokens sent | counted vs sent "
          "| mean per-stream error | worst | old count |")
    print("|---|---|---|---|---|---|---|")
    for encoding in ENCODINGS:
        tokens = dict(zip(kinds, tokenize([text for text, _ in kinds.values()], encoding),
                          strict=True))
        for mode, per_event in MODES.items():
            everything = []
            for kind, (_, kind_field) in kinds.items():
                results = simulate(tokens[kind], kind_field, per_event, args.streams, rng)
                everything += results
                print(report(f"{encoding}, {mode}, {kind}", results))
            print(report(f"**{encoding}, {mode}, all**", everything))


if __name__ == "__main__":
    main()
