"""Transports to upstreams, behind one seam (base.py).

Which one a provider uses is data: its profile's `transport`.
"""

from collections.abc import Callable

from gateway.config import Provider
from gateway.upstream.base import (
    ConnectFailed,
    ConnectionLost,
    ConnectTimeout,
    ResponseTooLarge,
    Transport,
    TransportError,
    UpstreamResponse,
)
from gateway.upstream.demo import DemoTransport
from gateway.upstream.http import HttpTransport

TRANSPORTS: dict[str, Callable[[Provider], Transport]] = {"http": HttpTransport.for_provider,
                                                          "demo": DemoTransport}


def open_transport(provider: Provider) -> Transport:
    return TRANSPORTS[provider.profile.transport](provider)


__all__ = [
    "ConnectFailed", "ConnectionLost", "ConnectTimeout", "ResponseTooLarge", "Transport", "TransportError",
    "UpstreamResponse", "open_transport",
]
