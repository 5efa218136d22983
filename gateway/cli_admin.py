"""`gateway keys ...` and `gateway usage ...`: the admin API, from a terminal.

They talk to a running gateway (`--url`, default $GATEWAY_URL or
http://127.0.0.1:8080) with the master key (`--master-key`, default
$GATEWAY_MASTER_KEY). Tables for people; `--json` (and `--csv` for usage)
for scripts.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

LIMIT_FLAGS = {  # flag -> the limits field it sets
    "rpm": "requests_per_minute", "tpm": "tokens_per_minute", "in_flight": "in_flight",
    "tpd": "tokens_per_day", "tokens_per_month": "tokens_per_month",
    "budget": "budget_per_month",
}
USAGE_COLUMNS = ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost",
                 "errors")


class AdminError(Exception):
    pass


def add_commands(commands) -> None:
    keys = commands.add_parser("keys", help="create, list, show, update or revoke gateway keys")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key; its secret is printed once")
    create.add_argument("name")
    _key_options(create)
    for name in ("list", "show", "update", "revoke"):
        action = actions.add_parser(name, help=f"{name} keys" if name == "list" else f"{name} a key")
        if name == "list":
            action.add_argument("--revoked", action="store_true", help="include revoked keys")
        else:
            action.add_argument("key", help="the key's id or name")
        if name == "update":
            action.add_argument("--name", dest="new_name", help="rename the key")
            _key_options(action)
    for action in actions.choices.values():
        _connection_options(action)

    usage = commands.add_parser("usage", help="usage per key, model and day")
    usage.add_argument("--key", help="one key (name or id)")
    usage.add_argument("--model", help="one model alias")
    usage.add_argument("--since", help="first day, YYYY-MM-DD (default: 30 days ago)")
    usage.add_argument("--until", help="last day, YYYY-MM-DD (default: today)")
    usage.add_argument("--by", default="day,key,model",
                       help="group by day, key and/or model, comma-separated (default: all three)")
    usage.add_argument("--sort", choices=("requests", "tokens", "cost", "errors"),
                       help="largest first by this amount (default: by the groups' labels)")
    usage.add_argument("--top", type=int, help="only the first N groups (totals stay whole)")
    usage.add_argument("--csv", action="store_true", help="CSV rows, for a spreadsheet")
    _connection_options(usage)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="the gateway (default $GATEWAY_URL or "
                                                    "http://127.0.0.1:8080)")
    parser.add_argument("--master-key", default=None, help="default $GATEWAY_MASTER_KEY")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", help="aliases or prefixes it may use, comma-separated "
                                         "(default: all)")
    parser.add_argument("--rpm", type=int, help="requests per minute")
    parser.add_argument("--tpm", type=int, help="tokens per minute")
    parser.add_argument("--in-flight", type=int, help="requests in flight at once")
    parser.add_argument("--tpd", type=int, help="tokens per day")
    parser.add_argument("--tokens-per-month", type=int, help="tokens per month")
    parser.add_argument("--budget", type=float, help="dollars per month (needs model prices)")
    parser.add_argument("--model-limit", action="append", default=[], metavar="MODEL:FIELD=N",
                        help="a limit on one model, e.g. gpt-5.4:rpm=10 (repeatable)")
    parser.add_argument("--expires", help="in 30d, 12h... or on a date (2026-12-31)")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="a label kept with the key (repeatable)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "usage":
            return _usage(args)
        return _keys(args)
    except AdminError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 1


def _keys(args: argparse.Namespace) -> int:
    action = args.action
    if action == "create":
        answer = _call(args, "POST", "/admin/keys", _key_body(args) | {"name": args.name})
    elif action == "list":
        answer = _every_key(args)
    elif action == "show":
        answer = _call(args, "GET", f"/admin/keys/{_quote(args.key)}")
    elif action == "update":
        body = _key_body(args) | ({"name": args.new_name} if args.new_name else {})
        answer = _call(args, "PATCH", f"/admin/keys/{_quote(args.key)}", body)
    else:
        answer = _call(args, "DELETE", f"/admin/keys/{_quote(args.key)}")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    if action == "list":
        rows = [[k["name"], k["id"], k["prefix"], ",".join(k["models"]), _limits_text(k),
                 (k["expires_at"] or "-")[:10], _last_use(k.get("last_used_at")),
                 "revoked" if k["revoked_at"] else k["source"]]
                for k in answer["data"]]
        print(table(["NAME", "ID", "PREFIX", "MODELS", "LIMITS", "EXPIRES", "LAST USED", "STATE"],
                    rows))
        return 0
    if action == "create":
        print(f"key {answer['name']} ({answer['id']}) created. Its secret, shown only now:\n\n"
              f"  {answer['key']}\n")
    elif action == "revoke":
        print(f"key {answer['name']} ({answer['id']}) revoked at {answer['revoked_at']}")
        return 0
    print(_describe(answer))
    for warning in answer.get("warnings", ()):
        print(f"warning: {warning}")
    return 0


def _every_key(args: argparse.Namespace) -> dict:
    """Every key, a page of 1000 at a time (the API's pages go by name)."""
    keys: list[dict] = []
    after = ""
    while True:
        page = _call(args, "GET", f"/admin/keys?limit=1000&after={_quote(after)}"
                     + ("&revoked=1" if args.revoked else ""))
        keys += page["data"]
        if not page.get("has_more"):
            return {"object": "list", "data": keys}
        after = page["next_after"]


def _last_use(when: float | None) -> str:
    return "-" if when is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(when))


def _usage(args: argparse.Namespace) -> int:
    query = {k: v for k, v in (("key", args.key), ("model", args.model), ("since", args.since),
                               ("until", args.until), ("by", args.by), ("sort", args.sort),
                               ("limit", args.top)) if v}
    answer = _call(args, "GET", "/admin/usage?" + urllib.parse.urlencode(query))
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    columns = answer["by"] + list(USAGE_COLUMNS)
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        for row in answer["data"]:
            writer.writerow([row[c] for c in columns])
        return 0
    rows = [[_cell(row[c]) for c in columns] for row in answer["data"]]
    rows.append(["total"] + [""] * (len(answer["by"]) - 1)
                + [_cell(answer["totals"][c]) for c in USAGE_COLUMNS])
    shown = "" if not answer.get("has_more") else \
        f" (the first {len(answer['data'])} of {answer['total_groups']} groups)"
    print(f"usage {answer['since']} .. {answer['until']}{shown}")
    print(table([c.upper().replace("_TOKENS", "") for c in columns], rows))
    return 0


def _key_body(args: argparse.Namespace) -> dict:
    body: dict = {}
    if args.models:
        body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    limits = {field: getattr(args, flag) for flag, field in LIMIT_FLAGS.items()
              if getattr(args, flag, None) is not None}
    for item in args.model_limit:
        model, _, assignments = item.rpartition(":")
        per_model = limits.setdefault("models", {}).setdefault(model, {})
        for assignment in assignments.split(","):
            flag, _, value = assignment.partition("=")
            field = LIMIT_FLAGS.get(flag.replace("-", "_"), flag)
            if not model or not value:
                raise AdminError(f"--model-limit takes MODEL:FIELD=N, got '{item}'")
            per_model[field] = float(value) if field == "budget_per_month" else int(value)
    if limits:
        body["limits"] = limits
    if args.expires:
        key = "expires_in" if args.expires[-1:] in "smhdw" and args.expires[:-1].isdigit() \
            else "expires_at"
        body[key] = args.expires
    if args.meta:
        body["metadata"] = dict(m.partition("=")[::2] for m in args.meta)
    return body


def _call(args: argparse.Namespace, method: str, path: str, body: dict | None = None) -> dict:
    base = (args.url or os.environ.get("GATEWAY_URL") or "http://127.0.0.1:8080").rstrip("/")
    key = args.master_key or os.environ.get("GATEWAY_MASTER_KEY")
    if not key:
        raise AdminError("the admin API needs the master key: --master-key or GATEWAY_MASTER_KEY")
    request = urllib.request.Request(
        base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = error.reason
        raise AdminError(f"{method} {path}: HTTP {error.code}: {message}") from None
    except urllib.error.URLError as error:
        raise AdminError(f"cannot reach the gateway at {base}: {error.reason}") from None


def _describe(key: dict) -> str:
    lines = [f"{name:<10} {value}" for name, value in (
        ("name", key["name"]), ("id", key["id"]), ("prefix", key["prefix"]),
        ("models", ", ".join(key["models"])), ("limits", _limits_text(key) or "defaults"),
        ("expires", key["expires_at"] or "never"), ("created", key["created_at"] or "-"),
        ("revoked", key["revoked_at"] or "no"), ("source", key["source"]))]
    lines += [f"{'meta':<10} {k}={v}" for k, v in key.get("metadata", {}).items()]
    return "\n".join(lines)


def _limits_text(key: dict) -> str:
    short = {v: k.replace("_", "-") for k, v in LIMIT_FLAGS.items()}
    limits = key.get("limits") or {}
    parts = [f"{short.get(k, k)} {v}" for k, v in limits.items() if k != "models"]
    for model, values in (limits.get("models") or {}).items():
        parts += [f"{model}:{short.get(k, k)} {v}" for k, v in values.items()]
    return ", ".join(parts)


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, for a terminal."""
    if not rows:
        return "(none)"
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in [header, *rows])


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")
