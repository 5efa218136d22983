"""The admin console in a real browser: Debian's Chromium, driven by Playwright, on a real gateway.

Each test signs in as an admin would and checks what the page shows against what the gateway
did (the openai SDK's answers, the /admin API). The same tests take the screenshots in
docs/console/ that the README shows (written there with GATEWAY_SCREENSHOTS=1).
"""

from __future__ import annotations

import http.server
import os
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import MASTER_KEY, REPO
from tests.gateway_process import GatewayProcess, admin, usage_of, wait_for
from tests.upstream import Upstream

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium package (.ci/run installs it)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# The README's screenshots: written there when GATEWAY_SCREENSHOTS=1 (to refresh them), else
# to a folder of the run's, so that a test run leaves the tree as it found it.
SHOTS = (REPO / "docs" / "console" if os.environ.get("GATEWAY_SCREENSHOTS") == "1"
         else Path(tempfile.gettempdir()) / f"gateway-console-shots-{os.getpid()}")
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
HOSTILE = "<img src=x onerror=alert(1)>"

CONFIG = """{server}
providers:
  primary: {{profile: openai, base_url: "{primary}", api_key: "${{PRIMARY_KEY}}"}}
models:
  gpt-test:
    price: {{input: 1000, output: 2000}}  # dollars per million tokens: a visible spend
    targets: [{{provider: primary, model: upstream-model-a}}]
  gpt-spare:
    targets:
      - {{provider: primary, model: upstream-model-b}}
keys:
  "{hostile}":
    key: "sk-test-hostile-name-0123456789"
    models: [gpt-test]
"""


def start_gateway(directory: Path, primary: Upstream, ttl: int | None = None) -> GatewayProcess:
    """A gateway on CONFIG; `ttl` sets its console sessions' life in seconds (default: 8 h)."""
    path = directory / "routes.yaml"
    server = f"server: {{console_session_ttl: {ttl}}}" if ttl else ""
    path.write_text(CONFIG.format(primary=primary.url, server=server, hostile=HOSTILE))
    env = {"PRIMARY_KEY": "sk-upstream-console-42", "GATEWAY_MASTER_KEY": MASTER_KEY}
    return GatewayProcess(path, env).start()


@pytest.fixture(scope="module")
def console(primary: Upstream, tmp_path_factory) -> Iterator[GatewayProcess]:
    """A gateway of the console tests' own: its keys, usage and config file are theirs alone."""
    process = start_gateway(tmp_path_factory.mktemp("console"), primary)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright gives each launch a fresh, temporary user-data-dir of its own.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, console: GatewayProcess) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the console, failing on any page error."""
    context = browser.new_context(viewport=LAPTOP, base_url=console.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.url)
    context.set_default_timeout(10_000)  # a missing element fails in 10 s, not Playwright's 30
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("dialog", lambda dialog: (errors.append("dialog: " + dialog.message), dialog.dismiss()))
    yield tab
    context.close()
    assert not errors, errors


def sign_in(page: Page, key: str = MASTER_KEY) -> None:
    page.goto("/console")
    page.fill("#master-key", key)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#nav")).to_be_visible()


def go(page: Page, name: str) -> None:
    page.click(f"#nav a[data-page={name}]")
    expect(page.locator(f"#page-{name}")).to_be_visible()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert (SHOTS / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def key_row(page: Page, name: str):
    return page.locator("#keys-table tbody tr").filter(
        has=page.locator("td:first-child", has_text=name))


def session_cookie(page: Page) -> dict:
    return next(c for c in page.context.cookies() if c["name"] == "gateway_console")


def test_sign_in_shows_the_form_alone_then_the_overview(page: Page) -> None:
    page.goto("/console")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    for name in ("overview", "keys", "usage", "routes", "config"):
        expect(page.locator(f"#page-{name}")).to_be_hidden()
    shot(page, "sign-in")

    page.fill("#master-key", "sk-not-the-master-key-000")
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#sign-in-error")).to_have_text("That key is not the master key.")
    expect(page.locator("#nav")).to_be_hidden()

    sign_in(page)
    expect(page.locator("#page-overview")).to_be_visible()
    expect(page.locator("#overview-today .card")).to_have_count(5)
    expect(page.locator("#overview-now")).to_contain_text("Config hash")
    cookie = session_cookie(page)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    assert "gateway_console" not in page.evaluate("() => document.cookie")
    shot(page, "overview")


def test_a_key_from_creation_to_its_usage_its_limit_and_its_revocation(
        page: Page, console: GatewayProcess) -> None:
    sign_in(page)
    go(page, "keys")
    page.click("#create-key summary")
    page.fill("#create-key-form [name=name]", "browser-team")
    page.fill("#create-key-form [name=models]", "gpt-test")
    page.click("#create-key-form button[type=submit]")
    expect(page.locator("#new-secret")).to_be_visible()
    secret = page.locator("#new-secret-value").inner_text()
    assert secret.startswith("sk-"), secret
    page.click("#copy-secret")
    expect(page.locator("#copy-secret")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    expect(key_row(page, "browser-team")).to_have_count(1)

    with openai.OpenAI(base_url=console.url + "/v1", api_key=secret, max_retries=0) as sdk:
        answer = sdk.chat.completions.create(model="gpt-test",
                                             messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
        recorded = usage_of(console, "browser-team", 1)
        assert recorded["cost"] > 0, recorded

        # Its usage and spend, as the Usage page shows them.
        go(page, "usage")
        page.select_option("#usage-form [name=by]", "key")
        page.fill("#usage-form [name=key]", "browser-team")
        page.select_option("#usage-form [name=metric]", "cost")
        page.click("#usage-form button[type=submit]")
        cells = page.locator("#usage-table tbody tr").filter(has_text="browser-team").locator("td")
        expect(cells.nth(1)).to_have_text("1")
        expect(cells.nth(5)).to_have_text(f"${recorded['cost']:.4f}")
        expect(page.locator("#usage-chart svg rect.bar")).to_have_count(1)
        csv = page.locator("#usage-csv").get_attribute("href")
        assert "format=csv" in csv and "key=browser-team" in csv, csv
        shot(page, "usage")

        # Its last use, once the recorder has written it.
        wait_for(lambda: _listed(console, "browser-team").get("last_used_at"), 10,
                 "the key's last use")
        go(page, "keys")
        expect(key_row(page, "browser-team").locator("td").nth(5)).not_to_have_text("never")
        shot(page, "keys")

        # A limit of 2 requests a minute: the third request is refused.
        key_row(page, "browser-team").locator("button[data-action=edit]").click()
        page.fill("#edit-form [name=requests_per_minute]", "2")
        page.click("#edit-form button[value=save]")
        expect(page.locator("#edit-dialog")).to_be_hidden()
        expect(key_row(page, "browser-team").locator("td").nth(3)).to_have_text("2 req/min")
        for _ in range(2):
            sdk.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError):
            sdk.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])

        # Revoked after a confirmation: the key is refused.
        key_row(page, "browser-team").locator("button[data-action=revoke]").click()
        expect(page.locator("#revoke-dialog")).to_be_visible()
        expect(page.locator("#revoke-name")).to_have_text("browser-team")
        page.click("#revoke-dialog button[value=revoke]")
        expect(key_row(page, "browser-team")).to_have_count(0)
        with pytest.raises(openai.AuthenticationError):
            sdk.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])


def test_a_hostile_key_name_shows_as_text(page: Page, console: GatewayProcess) -> None:
    # Names made by the API are plain, but a routes.yaml key can be named anything, and a
    # key's models are any strings: both reach the page as text.
    assert admin(console, "POST", "/admin/keys",
                 {"name": "hostile-models", "models": [HOSTILE]}).status_code == 201
    sign_in(page)
    go(page, "keys")
    expect(key_row(page, HOSTILE)).to_have_count(1)
    expect(key_row(page, "hostile-models").locator("td").nth(2)).to_have_text(HOSTILE)
    assert page.locator("#keys-table img").count() == 0
    assert page.evaluate("() => document.images.length") == 0
    # The page fixture fails the test on any alert() the markup would have run.


def test_keys_come_a_page_at_a_time(page: Page, console: GatewayProcess) -> None:
    for i in range(55):
        assert admin(console, "POST", "/admin/keys", {"name": f"paged-{i:02d}"}).status_code == 201
    total = sum(1 for _ in _all_keys(console))
    sign_in(page)
    go(page, "keys")
    expect(page.locator("#keys-table tbody tr")).to_have_count(50)
    expect(page.locator("#keys-prev")).to_be_disabled()
    page.click("#keys-next")
    expect(page.locator("#keys-page")).to_have_text("Page 2")
    expect(page.locator("#keys-table tbody tr")).to_have_count(min(50, total - 50))
    page.click("#keys-prev")
    expect(page.locator("#keys-page")).to_have_text("Page 1")
    expect(page.locator("#keys-table tbody tr")).to_have_count(50)


def test_usage_by_key_shows_the_top_keys_a_page_at_a_time(page: Page,
                                                          console: GatewayProcess) -> None:
    """By key, the Usage page shows the keys with most usage first, 50 a page, and its CSV
    link has every key: the page stays small with 10,000 keys."""
    for i in range(55):
        made = admin(console, "POST", "/admin/keys", {"name": f"spender-{i:02d}"})
        assert made.status_code == 201
        for _ in range(9 if i == 54 else 1):  # more than any other test's key
            answer = httpx.post(console.url + "/v1/chat/completions", timeout=10,
                                headers={"Authorization": "Bearer " + made.json()["key"]},
                                json={"model": "gpt-test", "messages": [{"role": "user",
                                                                         "content": "hi"}]})
            assert answer.status_code == 200, answer.text
    usage_of(console, "spender-54", 9)
    groups = wait_for(lambda: (lambda a: a["total_groups"] if sum(
        1 for r in a["data"] if r["key"].startswith("spender-")) == 55 else None)(
        admin(console, "GET", "/admin/usage?by=key").json()), 10, "55 keys' usage")
    sign_in(page)
    go(page, "usage")
    page.select_option("#usage-form [name=by]", "key")
    page.select_option("#usage-form [name=metric]", "requests")
    page.click("#usage-form button[type=submit]")
    expect(page.locator("#usage-table tbody tr")).to_have_count(50)
    expect(page.locator("#usage-table tbody tr").first.locator("td").first).to_have_text(
        "spender-54")  # the most requests: first
    expect(page.locator("#usage-page")).to_have_text(f"1–50 of {groups}")
    expect(page.locator("#usage-chart svg rect.bar")).to_have_count(50)
    expect(page.locator("#usage-prev")).to_be_disabled()
    page.click("#usage-next")
    expect(page.locator("#usage-page")).to_have_text(f"51–{groups} of {groups}")
    expect(page.locator("#usage-table tbody tr")).to_have_count(groups - 50)
    expect(page.locator("#usage-next")).to_be_disabled()
    page.click("#usage-prev")
    expect(page.locator("#usage-page")).to_have_text(f"1–50 of {groups}")
    csv = page.locator("#usage-csv").get_attribute("href")
    assert "sort=requests" in csv and "limit" not in csv and "offset" not in csv, csv
    listed = admin(console, "GET", csv).text.splitlines()
    assert len(listed) == groups + 1 and listed[1].startswith("spender-54,"), listed[:2]


def test_routes_show_each_target_and_its_health(page: Page) -> None:
    sign_in(page)
    go(page, "routes")
    route = page.locator("#routes article").filter(has=page.locator("h2", has_text="gpt-test"))
    expect(route.locator("h3")).to_contain_text("Group 1")
    cells = route.locator("tbody tr").first.locator("td")
    expect(cells.nth(1)).to_have_text("primary")
    expect(cells.nth(2)).to_have_text("upstream-model-a")
    expect(cells.nth(3)).to_contain_text("chat")
    expect(cells.nth(4)).to_have_text("closed")
    shot(page, "routes")


def test_a_bad_config_reload_shows_the_refusal(page: Page, console: GatewayProcess) -> None:
    sign_in(page)
    go(page, "config")
    expect(page.locator("#config-text")).to_contain_text("gpt-test")
    expect(page.locator("#config-facts")).to_contain_text(str(console.config))
    good = console.config.read_text()
    try:
        console.config.write_text(good.replace("provider: primary, model: upstream-model-b",
                                               "provider: nowhere, model: upstream-model-b"))
        page.click("#reload")
        refusal = page.locator("#reload-result .refusal")
        expect(refusal).to_contain_text("refused")
        expect(refusal).to_contain_text("nowhere")
        shot(page, "config")
    finally:
        console.config.write_text(good)
    assert admin(console, "POST", "/admin/reload").status_code == 200


def test_a_cross_site_post_is_refused(page: Page, console: GatewayProcess) -> None:
    sign_in(page)
    # The same origin without the token: refused.
    status = page.evaluate("""() => fetch('/admin/keys', {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'no-token'})})
        .then(r => r.json().then(b => [r.status, b.error.code]))""")
    assert status == [403, "csrf_failed"], status

    # Another origin on the same site (so the SameSite=Strict cookie is sent): a page there
    # posts to /admin/keys with the admin's cookie (a no-cors fetch, as a form would).
    attack = textwrap.dedent(f"""\
        <!doctype html><title>attack</title><script>
        fetch("{console.url}/admin/keys", {{method: "POST", mode: "no-cors", credentials: "include",
          headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{name: "csrf-victim"}})}});
        </script>""")
    with _serving(attack) as url:
        with page.expect_response(lambda r: r.url.endswith("/admin/keys")) as answer:
            page.goto(url)
        assert answer.value.status == 403
    assert admin(console, "GET", "/admin/keys/csrf-victim").status_code == 404
    assert admin(console, "GET", "/admin/keys/no-token").status_code == 404


def test_an_expired_or_ended_session_is_refused(
        browser: Browser, page: Page, primary: Upstream, tmp_path) -> None:
    # Signing out ends the session on the server: its cookie, replayed, is refused.
    sign_in(page)
    cookie = session_cookie(page)
    base = page.url.split("/console")[0]
    assert _with_cookie(base, cookie).status_code == 200
    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    assert _with_cookie(base, cookie).status_code == 401

    # A session past its TTL (4 s here: time for the first check on a loaded machine) is
    # refused, and the page asks to sign in again.
    short = start_gateway(tmp_path, primary, 4)
    try:
        context = browser.new_context(viewport=LAPTOP, base_url=short.url)
        tab = context.new_page()
        sign_in(tab)
        cookie = session_cookie(tab)
        assert _with_cookie(short.url, cookie).status_code == 200
        started = time.monotonic()
        wait_for(lambda: _with_cookie(short.url, cookie).status_code == 401, 10,
                 "the session to expire")
        assert time.monotonic() - started < 10
        tab.click("#nav a[data-page=keys]")
        expect(tab.locator("#sign-in")).to_be_visible()
        expect(tab.locator("#page-keys")).to_be_hidden()
        context.close()
    finally:
        short.stop()


def test_every_page_fits_a_phone(page: Page) -> None:
    page.set_viewport_size(PHONE)
    sign_in(page)
    for name in ("overview", "keys", "usage", "routes", "config"):
        go(page, name)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (name, width)
    go(page, "keys")
    shot(page, "keys-phone")


def _all_keys(gateway: GatewayProcess) -> Iterator[dict]:
    """Every key the admin API lists, page by page."""
    after = ""
    while True:
        page = admin(gateway, "GET", f"/admin/keys?limit=1000&after={after}").json()
        yield from page["data"]
        if not page["has_more"]:
            return
        after = page["next_after"]


def _listed(gateway: GatewayProcess, name: str) -> dict:
    return next((k for k in _all_keys(gateway) if k["name"] == name), {})


def _with_cookie(base: str, cookie: dict) -> httpx.Response:
    return httpx.get(base + "/admin/keys?limit=1", cookies={cookie["name"]: cookie["value"]},
                     timeout=5)


class _Page(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


class _serving:
    """One HTML page served from another loopback port: another origin, the same site."""

    def __init__(self, html: str) -> None:
        handler = type("Attack", (_Page,), {"body": html.encode()})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
