"""The console's static files: in the package, self-contained, and safe under the CSP.

The gateway serves them with `script-src 'self'; style-src 'self'`, so inline code would be
dead in the browser; and every server value must reach the page as text, never as HTML."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import gateway

STATIC = Path(gateway.__file__).parent / "console" / "static"
ASSETS = ("index.html", "console.js", "console.css")


def text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ASSETS)
def test_the_asset_is_in_the_package(name: str) -> None:
    assert (STATIC / name).is_file()
    assert (STATIC / name).stat().st_size > 0


@pytest.mark.parametrize("name", ASSETS)
def test_no_asset_refers_to_another_origin(name: str) -> None:
    # A CDN or a font host would break offline use and the CSP's default-src 'none'.
    # The SVG namespace is a name, never fetched.
    code = _code_of(name).replace('"http://www.w3.org/2000/svg"', "")
    assert not re.search(r"(https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", code), name
    assert "@import" not in text(name)


def test_the_page_has_no_inline_script_or_style() -> None:
    page = text("index.html")
    for tag in re.finditer(r"<script\b([^>]*)>(.*?)</script>", page, re.S | re.I):
        assert 'src="/console/assets/' in tag.group(1) and not tag.group(2).strip(), tag.group(0)
    assert not re.search(r"<style\b", page, re.I)
    assert not re.search(r"\sstyle\s*=", page, re.I)
    assert not re.search(r"\son[a-z]+\s*=", page, re.I), "inline event handler"
    assert not re.search(r"javascript:", page, re.I)
    assert 'href="/console/assets/console.css"' in page


def test_the_script_never_parses_html_or_code() -> None:
    script = _code_of("console.js")
    for banned in (r"\.innerHTML\b", r"\.outerHTML\b", r"insertAdjacentHTML", r"\beval\s*\(",
                   r"\bnew\s+Function\b", r"document\.write", r"setTimeout\s*\(\s*['\"`]",
                   r"localStorage", r"sessionStorage", r"\.style\s*=", r"setAttribute\(\s*['\"]style"):
        assert not re.search(banned, script), banned


def test_every_change_carries_the_csrf_token() -> None:
    # One fetch in the whole script, in api(): it sends the cookie same-origin and the token
    # on anything that is not a GET or HEAD.
    script = _code_of("console.js")
    assert len(re.findall(r"\bfetch\(", script)) == 1
    assert 'credentials: "same-origin"' in script
    assert re.search(r'method !== "GET" && method !== "HEAD"\) headers\["X-CSRF-Token"\]', script)


def _code_of(name: str) -> str:
    """The file without its comments, so prose may name what code must not do."""
    source = text(name)
    if name.endswith(".js"):
        return re.sub(r"^[ \t]*//[^\n]*|/\*.*?\*/", "", source, flags=re.M | re.S)
    if name.endswith(".css"):
        return re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return re.sub(r"<!--.*?-->", "", source, flags=re.S)
