"""Logs: one JSON line per event for machines, a readable line on a terminal.

Every line written while a request is handled carries its request id (a
context variable), so a request can be followed through the log. Keys and
prompts never reach the log.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
import time
from contextvars import ContextVar

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

log = logging.getLogger("gateway")
_json_fd: int | None = None  # where JSON lines go, when that is a file descriptor
_lines: list[bytes] = []  # request lines of this turn of the event loop, not written yet
atexit.register(lambda: flush())  # a line made as the process stops


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        flush()  # request lines made before this record go out before it
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                "logger": record.name, "msg": record.getMessage()}
        request_id = getattr(record, "request_id", None)  # set by _RequestIdFilter
        if request_id:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        parts = [stamp, record.levelname.lower().ljust(7), record.getMessage()]
        request_id = getattr(record, "request_id", None)  # set by _RequestIdFilter
        if request_id:
            parts.append(f"request_id={request_id}")
        for key, value in (getattr(record, "fields", None) or {}).items():
            if value is not None:
                parts.append(f"{key}={value}")
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def log_request(fields: dict) -> None:
    """The line every request writes. In JSON format it skips the logging machinery
    (a record, a filter, a handler lock, a formatter, a flush): one `orjson.dumps`, and
    the lines of a turn of the event loop go out in one write, at its end."""
    if not log.isEnabledFor(logging.INFO):
        return
    if _json_fd is None:
        log.info("request", extra={"fields": fields})
        return
    line = {"ts": round(time.time(), 3), "level": "info", "logger": "gateway", "msg": "request"}
    request_id = REQUEST_ID.get()
    if request_id:
        line["request_id"] = request_id
    line.update(fields)
    _lines.append(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
    if len(_lines) == 1:
        try:
            asyncio.get_running_loop().call_soon(flush)
        except RuntimeError:  # no loop: written now
            flush()


def flush() -> None:
    """Write the request lines not written yet."""
    if not _lines or _json_fd is None:
        return
    data = b"".join(_lines)
    _lines.clear()
    try:
        while data:
            data = data[os.write(_json_fd, data):]
    except OSError:
        pass  # stderr is gone; the request must not fail for its log line


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    """JSON lines unless stderr is a terminal (or `fmt` says otherwise).

    Every request writes a line, so records skip what no line here shows: the caller's
    file and line (a stack walk per record), thread and process names.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    global _json_fd
    flush()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    _json_fd = None
    if fmt != "text":
        try:
            _json_fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            pass  # a stand-in stream (a test's capture): lines go through the handler
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The gateway writes each request's line itself. uvicorn writes its access line whenever
    # its logger has a handler, its ancestors' included: this one must have none.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
