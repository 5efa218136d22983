"""/console/session and the console's cookie on /admin, on a real gateway (memory store).

Sign-in sets an HttpOnly, SameSite=Strict cookie with Max-Age; the cookie alone reads
/admin; a change with it needs the session's X-CSRF-Token and the gateway's own origin;
logout revokes it; an expired session is refused; the master key by header works as before.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.console.session import COOKIE
from tests.conftest import assert_openai_error
from tests.console.helpers import MASTER_KEY, Signed, config, sign_in, signed_in
from tests.gateway_process import GatewayProcess, admin, wait_for


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    path = tmp_path_factory.mktemp("console") / "routes.yaml"
    path.write_text(config(ttl=3600))
    with GatewayProcess(path, {"GATEWAY_MASTER_KEY": MASTER_KEY}) as process:
        yield process


@pytest.fixture
def console(gateway: GatewayProcess) -> Signed:
    return signed_in(gateway)


def cookie_attributes(response: httpx.Response) -> dict[str, str]:
    header = response.headers["set-cookie"]
    name_value, *attributes = (part.strip() for part in header.split(";"))
    assert name_value.startswith(COOKIE + "=")
    return {a.partition("=")[0].lower(): a.partition("=")[2] for a in attributes}


def test_sign_in_sets_a_strict_http_only_cookie_with_an_expiry(gateway):
    response = sign_in(gateway)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"csrf", "expires_at"} and len(body["csrf"]) >= 32
    attributes = cookie_attributes(response)
    assert "httponly" in attributes and "secure" not in attributes  # plain http here
    assert attributes["samesite"].lower() == "strict"
    assert attributes["path"] == "/" and attributes["max-age"] == "3600"
    assert response.headers["cache-control"] == "no-store"
    token = response.cookies[COOKIE]
    assert len(token) >= 40 and token != MASTER_KEY and MASTER_KEY not in response.text
    again = httpx.get(gateway.url + "/console/session", headers={"cookie": f"{COOKIE}={token}"})
    assert again.status_code == 200 and again.json() == body


def test_sign_in_behind_a_tls_proxy_marks_the_cookie_secure(gateway):
    response = sign_in(gateway, x_forwarded_proto="https")
    assert response.status_code == 200
    assert "secure" in cookie_attributes(response)


@pytest.mark.parametrize("key", [f'"{MASTER_KEY}x"', '"sk-test-console-master"',
                                 '"\\u00e9t\\u00e9"'])
def test_a_wrong_key_is_refused(gateway, key):
    response = httpx.post(gateway.url + "/console/session", content=f'{{"key": {key}}}',
                          headers={"content-type": "application/json"})
    assert_openai_error(response, 401, code="invalid_api_key")
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("body", [b"{}", b'{"key": ""}', b'{"key": 1}', b"[", b'{"key": "k", "x": 1}',
                                  b'{"key": "\\ud800"}'])
def test_a_bad_sign_in_body_is_a_400(gateway, body):
    response = httpx.post(gateway.url + "/console/session", content=body,
                          headers={"content-type": "application/json"})
    assert_openai_error(response, 400)


def test_no_session_is_a_401(gateway):
    assert_openai_error(httpx.get(gateway.url + "/console/session"), 401, code="invalid_session")
    forged = httpx.get(gateway.url + "/admin/keys", headers={"cookie": f"{COOKIE}=forged"})
    assert_openai_error(forged, 401, code="invalid_session")


def test_the_cookie_alone_reads_admin(console):
    response = console.call("GET", "/admin/keys", csrf=None)
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "list"
    assert console.call("GET", "/admin/usage", csrf=None).status_code == 200


def test_changes_with_the_cookie_need_the_csrf_token(console):
    made = console.call("POST", "/admin/keys", {"name": "csrf-made"})
    assert made.status_code == 201, made.text
    for method, path, body in [("POST", "/admin/keys", {"name": "csrf-refused"}),
                               ("PATCH", "/admin/keys/csrf-made", {"models": ["demo"]}),
                               ("DELETE", "/admin/keys/csrf-made", None),
                               ("POST", "/admin/reload", None)]:
        for csrf in (None, "wrong-token", console.csrf[:-1]):
            refused = console.call(method, path, body, csrf=csrf)
            assert_openai_error(refused, 403, code="csrf_failed")
    assert console.call("GET", "/admin/keys/csrf-made", csrf=None).json()["models"] == ["*"]
    assert console.call("GET", "/admin/keys/csrf-refused", csrf=None).status_code == 404
    changed = console.call("PATCH", "/admin/keys/csrf-made", {"models": ["demo"]},
                           origin=console.gateway.url)
    assert changed.status_code == 200 and changed.json()["models"] == ["demo"]
    revoked = console.call("DELETE", "/admin/keys/csrf-made", sec_fetch_site="same-origin")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]


@pytest.mark.parametrize("headers", [
    {"origin": "https://evil.example"},
    {"origin": "null"},
    {"origin": "http://127.0.0.1:1"},  # same host, another port: another origin
    {"sec_fetch_site": "cross-site"},
    {"sec_fetch_site": "same-site"},
])
def test_a_cross_site_change_is_refused_even_with_the_token(console, headers):
    refused = console.call("POST", "/admin/keys", {"name": "cross-site"}, **headers)
    assert_openai_error(refused, 403, code="csrf_failed")
    assert console.call("GET", "/admin/keys/cross-site", csrf=None).status_code == 404


def test_the_master_key_by_header_works_as_before(gateway, console):
    made = admin(gateway, "POST", "/admin/keys", {"name": "by-header"})
    assert made.status_code == 201, made.text
    assert admin(gateway, "DELETE", "/admin/keys/by-header").status_code == 200
    # A header key is judged alone: a wrong one is not rescued by a live cookie.
    wrong = console.call("GET", "/admin/keys", csrf=None, authorization="Bearer sk-wrong-0123")
    assert_openai_error(wrong, 401)


def test_logout_revokes_the_session(gateway, console):
    refused = console.call("DELETE", "/console/session", csrf=None)
    assert_openai_error(refused, 403, code="csrf_failed")
    out = console.call("DELETE", "/console/session")
    assert out.status_code == 204
    attributes = cookie_attributes(out)
    assert attributes["max-age"] == "0" and "httponly" in attributes
    assert_openai_error(console.call("GET", "/admin/keys", csrf=None), 401, code="invalid_session")
    assert_openai_error(console.call("GET", "/console/session", csrf=None), 401)
    assert_openai_error(console.call("DELETE", "/console/session"), 401)
    assert signed_in(gateway).call("GET", "/admin/keys", csrf=None).status_code == 200


def test_the_master_key_is_not_in_the_log(gateway):
    assert sign_in(gateway).status_code == 200
    assert MASTER_KEY not in gateway.log()


def test_an_expired_session_is_refused(tmp_path):
    path = tmp_path / "routes.yaml"
    # 3 s: long enough for the first call to come in time on a loaded machine (1 s was not).
    path.write_text(config(ttl=3))
    with GatewayProcess(path, {"GATEWAY_MASTER_KEY": MASTER_KEY}) as gateway:
        response = sign_in(gateway)
        assert cookie_attributes(response)["max-age"] == "3"
        console = signed_in(gateway)
        assert console.call("GET", "/admin/keys", csrf=None).status_code == 200
        wait_for(lambda: console.call("GET", "/admin/keys", csrf=None).status_code == 401, 10,
                 "the session to expire")
        assert_openai_error(console.call("POST", "/admin/keys", {"name": "late"}), 401,
                            code="invalid_session")
        assert_openai_error(console.call("GET", "/console/session", csrf=None), 401)


def test_guessing_the_master_key_is_slowed(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(config())
    with GatewayProcess(path, {"GATEWAY_MASTER_KEY": MASTER_KEY}) as gateway:
        for n in range(10):
            assert sign_in(gateway, f"guess-{n}").status_code == 401
        limited = sign_in(gateway, MASTER_KEY)  # even the right key, for a while
        assert_openai_error(limited, 429, code="too_many_sign_ins")
        assert 1 <= int(limited.headers["retry-after"]) <= 61
        assert admin(gateway, "GET", "/admin/keys").status_code == 200  # the CLI is not


def test_without_a_master_key_the_console_is_disabled(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(config())
    with GatewayProcess(path, {"GATEWAY_MASTER_KEY": ""}) as gateway:
        assert_openai_error(sign_in(gateway), 401, code="admin_disabled")
        assert_openai_error(httpx.get(gateway.url + "/console/session"), 401)
