"""What a vLLM replica says about itself: health, served models, load. Used by the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from gateway.config import Provider
from gateway.monitor import parse_load


@dataclass
class ReplicaReport:
    healthy: bool
    served: list[str] | None = None
    running: float | None = None
    waiting: float | None = None
    kv_cache: float | None = None
    error: str | None = None


def _get(url: str, timeout: float, api_key: str | None) -> bytes:
    request = urllib.request.Request(url)
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http only)
        return response.read()


def served_models(root: str, timeout: float = 2.0, api_key: str | None = None) -> list[str]:
    """The ids in /v1/models; raises OSError when the server does not answer."""
    try:
        data = json.loads(_get(root + "/v1/models", timeout, api_key))
        return [m["id"] for m in data["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise OSError(f"{root}/v1/models is not a model list") from exc


def inspect(root: str, provider: Provider, model: str | None = None, timeout: float = 2.0,
            api_key: str | None = None) -> ReplicaReport:
    """`provider` is the replica's: its profile says where the load is and how to read it."""
    try:
        _get(root + "/health", timeout, None)
    except (OSError, urllib.error.URLError) as exc:
        return ReplicaReport(False, error=_reason(exc))
    report = ReplicaReport(True)
    try:
        report.served = served_models(root, timeout, api_key)
        metrics, url = provider.profile.load_metrics, provider.metrics_url
        load = (parse_load(_get(url, timeout, None).decode(errors="replace"), metrics, model)
                if metrics is not None and url is not None else None)
        if load is not None:
            report.running, report.waiting, report.kv_cache = (load.running, load.waiting,
                                                               load.kv_cache)
    except (OSError, urllib.error.URLError) as exc:
        report.error = _reason(exc)
    return report


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    reason = getattr(exc, "reason", None) or exc
    return str(reason)
