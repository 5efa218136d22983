"""The seam between the gateway and whatever carries bytes to an upstream.

It speaks plain primitives, as httpx's transport layer does: URL, headers and
body in; status, headers and a byte stream out. The relay never sees the
client library, so the library stays a measured, swappable choice, and the
built-in demo model plugs in as one more transport.

Timeouts other than the TCP connect are imposed by the relay, not here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol


class TransportError(Exception):
    """The upstream could not be reached or the connection broke; the message says how."""


class ConnectFailed(TransportError):
    """No request reached the upstream: it is safe to try another target."""


class ConnectTimeout(ConnectFailed):
    """The TCP connection was not made in time."""


class ConnectionLost(TransportError):
    """The connection broke while the answer was being read."""


class ResponseTooLarge(TransportError):
    pass


class MalformedStream(TransportError):
    """The upstream's stream holds an event a client could not parse."""


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self, limit: int) -> bytes:
        """The whole body; ResponseTooLarge past `limit` bytes."""

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, in whatever pieces the network delivers."""

    def exhausted(self) -> bool:
        """Whether the whole body has arrived and `chunks()` has yielded all of it: the next
        step of `chunks()` ends it at once, without waiting."""

    def close(self) -> None:
        """Release the connection; one closed before the body ended is dropped, so the upstream stops."""


class Transport(Protocol):
    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        """POST `body`; return once the response status and headers have arrived."""

    async def get(self, url: str, timeout: float, limit: int = 4 * 2**20) -> tuple[int, bytes]:
        """A small GET for health probes and metrics: status and body. TransportError if it fails."""

    async def aclose(self) -> None:
        """Close every pooled connection."""
