"""Signing in to a gateway's console and calling it with the cookie, as a browser would."""

from __future__ import annotations

import http.client
from dataclasses import dataclass

import httpx

from gateway.console.session import COOKIE
from tests.gateway_process import GatewayProcess

MASTER_KEY = "sk-test-console-master-0123456789"
CONFIG = """
server: {{console_session_ttl: {ttl}}}
{store}
providers:
  demo: {{profile: demo}}
models:
  demo: {{targets: [{{provider: demo, model: demo}}]}}
"""


def config(ttl: int = 3600, redis_url: str | None = None) -> str:
    store = f'store: {{url: "{redis_url}"}}' if redis_url else ""
    return CONFIG.format(ttl=ttl, store=store)


@dataclass
class Signed:
    """A signed-in console: its cookie token and CSRF token."""

    gateway: GatewayProcess
    token: str
    csrf: str

    def call(self, method: str, path: str, body: dict | None = None, *, csrf: str | None = "",
             gateway: GatewayProcess | None = None, **headers: str) -> httpx.Response:
        """`path` with the cookie; the CSRF header is the session's unless `csrf` is given
        (None: none sent)."""
        sent = {"cookie": f"{COOKIE}={self.token}"} | {
            k.replace("_", "-"): v for k, v in headers.items()}
        if csrf is not None:
            sent["x-csrf-token"] = csrf or self.csrf
        return httpx.request(method, (gateway or self.gateway).url + path, json=body,
                             headers=sent, timeout=10)


def sign_in(gateway: GatewayProcess, key: str = MASTER_KEY, **headers: str) -> httpx.Response:
    return httpx.post(gateway.url + "/console/session", json={"key": key}, timeout=10,
                      headers={k.replace("_", "-"): v for k, v in headers.items()})


def signed_in(gateway: GatewayProcess) -> Signed:
    response = sign_in(gateway)
    assert response.status_code == 200, response.text
    return Signed(gateway, response.cookies[COOKIE], response.json()["csrf"])


def raw_get(gateway: GatewayProcess, path: str) -> tuple[int, str, bytes]:
    """GET `path` exactly as written (no client normalizing its dots or escapes away): the
    status, the content type and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        connection.close()
