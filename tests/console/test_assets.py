"""/console and /console/assets/<file>: the package's static files, with the CSP and headers,
and nothing else from the file system, however the path is written."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.console.assets import CSP, STATIC
from tests.conftest import assert_openai_error
from tests.console.helpers import MASTER_KEY, config, raw_get
from tests.gateway_process import GatewayProcess

SERVED = sorted(p.name for p in STATIC.iterdir()
                if p.suffix in (".html", ".js", ".css", ".svg", ".png", ".ico", ".woff2"))
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    path = tmp_path_factory.mktemp("assets") / "routes.yaml"
    path.write_text(config())
    with GatewayProcess(path, {"GATEWAY_MASTER_KEY": MASTER_KEY}) as process:
        yield process


def assert_strict_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert "script-src 'self';" in CSP and "frame-ancestors 'none'" in CSP
    assert "unsafe-inline" not in CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"]


@pytest.mark.parametrize("path", ["/console", "/console/"])
def test_the_page_is_served_without_a_session(gateway, path):
    response = httpx.get(gateway.url + path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.content == (STATIC / "index.html").read_bytes()
    assert_strict_headers(response)


@pytest.mark.parametrize("name", SERVED)
def test_each_asset_is_served_with_its_type_and_the_headers(gateway, name):
    response = httpx.get(f"{gateway.url}/console/assets/{name}")
    assert response.status_code == 200
    assert response.content == (STATIC / name).read_bytes()
    suffix = name[name.rfind("."):]
    assert response.headers["content-type"].startswith(TYPES.get(suffix, ""))
    assert_strict_headers(response)
    again = httpx.get(f"{gateway.url}/console/assets/{name}",
                      headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("path", [
    "/console/assets/../../app.py",
    "/console/assets/../session.py",
    "/console/assets/..%2F..%2Fapp.py",
    "/console/assets/%2e%2e%2f%2e%2e%2fapp.py",
    "/console/assets/%2e%2e",
    "/console/assets/..%5c..%5capp.py",
    "/console/assets/%2Fetc%2Fpasswd",
    "/console/assets/session.py",  # beside static/, in the package
    "/console/assets/__init__.py",
    "/console/assets/nothing.js",
    "/console/assets/",
])
def test_paths_outside_the_files_are_404(gateway, path):
    status, media_type, body = raw_get(gateway, path)
    assert status == 404, path
    assert media_type.startswith("application/json")
    assert b'"error"' in body and b"import" not in body


def test_an_unknown_asset_is_an_openai_shaped_404(gateway):
    response = httpx.get(gateway.url + "/console/assets/missing.css")
    assert_openai_error(response, 404, code="unknown_url")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_openapi_document_has_the_console(gateway):
    document = httpx.get(gateway.url + "/openapi.json").json()
    session = document["paths"]["/console/session"]
    assert set(session) == {"post", "get", "delete"}
    assert session["post"]["requestBody"]["content"]["application/json"]["schema"]["required"] \
        == ["key"]
    assert {"consoleSession": []} in document["paths"]["/admin/keys"]["post"]["security"]
    assert document["components"]["securitySchemes"]["consoleSession"]["in"] == "cookie"
