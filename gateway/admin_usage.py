"""GET /admin/usage: usage over a date range, grouped by day, key and/or model, as JSON or CSV.

Each grouping reads the smallest thing the store keeps that answers it:
    by day, model or both (no key filter)   the per-(day, model) sums: a row a day and model
    by key alone (no model filter)          the per-(day, key) and per-(month, key) sums
    a key filter                            that key's rows only
    anything else (key with day or model)   every key's rows: keys x days, bounded by retention

`sort` orders the groups by an amount (largest first) and `limit`/`offset` take a page of
them: the console shows the top 50 keys of 10,000, and the CSV has them all. `totals` and
`total_groups` are always over every group.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from gateway.admin import admin, query_number
from gateway.core.errors import InvalidRequest
from gateway.endpoints import json_response
from gateway.store.base import UsageRow

GROUPS = ("day", "key", "model")
AMOUNTS = ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost", "errors")
SORTS = {"requests": ("requests",), "cost": ("cost",), "errors": ("errors",),
         "tokens": ("prompt_tokens", "completion_tokens")}
MAX_LIMIT = 10_000


@admin
async def usage(request: Request) -> Response:
    runtime = request.app.state.runtime
    query = request.query_params
    today = datetime.now(UTC).date()
    since = _day(query.get("since"), "since") or (today - timedelta(days=30)).isoformat()
    until = _day(query.get("until"), "until") or today.isoformat()
    by = [b.strip() for b in (query.get("by") or "day,key,model").split(",") if b.strip()]
    if not by or any(b not in GROUPS for b in by):
        raise InvalidRequest("'by' takes day, key and model, comma-separated.", param="by")
    form = _choice(query, "format", ("json", "csv")) or "json"
    sort = _choice(query, "sort", tuple(SORTS))
    limit = query_number(query, "limit", 1, MAX_LIMIT)
    offset = query_number(query, "offset", 0, 10**9) or 0
    wanted, model = query.get("key"), query.get("model")
    store = runtime.store
    names = {"master": "master"} | {k.id: k.name for k in runtime.config.keys.values()}
    if "key" in by or wanted:
        names |= await store.key_names()
    rows: list[UsageRow]
    if wanted:
        rows = await store.usage(since, until, sorted({wanted} | {i for i, n in names.items()
                                                                   if n == wanted}))
    elif "key" not in by:
        rows = await store.model_totals(since, until)  # a row a day and model
    elif by == ["key"] and not model:
        rows = await store.key_totals(since, until)  # a row a key
    else:
        rows = await store.usage(since, until)  # every key's rows: keys x days
    if model:
        rows = [r for r in rows if r.model == model]
    groups: dict[tuple, dict] = {}
    for row in rows:
        labels = {"day": row.day, "key": names.get(row.key_id, row.key_id), "model": row.model}
        place = tuple(labels[b] for b in by)
        group = groups.get(place)
        if group is None:
            group = groups[place] = {b: labels[b] for b in by} | _zero()
        _add(group, row)
    data = [groups[k] for k in sorted(groups)]
    if sort:
        fields = SORTS[sort]
        data.sort(key=lambda g: sum(g[f] for f in fields), reverse=True)  # stable: ties by label
    page = data[offset:offset + limit] if limit else data[offset:]
    if form == "csv":
        return _csv(by + list(AMOUNTS), page, f"usage-{since}-{until}.csv")
    totals = _zero()
    for row in rows:
        _add(totals, row)
    return json_response({"object": "list", "since": since, "until": until, "by": by,
                          "data": page, "totals": totals, "total_groups": len(data),
                          "has_more": offset + len(page) < len(data)})


def _csv(header: list[str], rows: list[dict], filename: str) -> Response:
    """A header row, then a line a group; a cell that a spreadsheet would run as a formula
    (a key name starting with =, +, - or @) is quoted as text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v
                         for v in (row[h] for h in header)])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})


def _zero() -> dict:
    return dict.fromkeys(AMOUNTS, 0) | {"cost": 0.0}


def _add(total: dict, row: UsageRow) -> None:
    for field in ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "errors"):
        total[field] += getattr(row, field)
    total["cost"] = round(total["cost"] + row.cost, 6)


def _day(value: str | None, param: str) -> str | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).date().isoformat()
    except ValueError:
        raise InvalidRequest(f"'{param}' takes a date: YYYY-MM-DD.", param=param) from None


def _choice(query, param: str, choices: tuple[str, ...]) -> str | None:
    value = query.get(param) or None
    if value is not None and value not in choices:
        raise InvalidRequest(f"'{param}' takes {', '.join(choices[:-1])} or {choices[-1]}.",
                             param=param, code="invalid_value")
    return value
