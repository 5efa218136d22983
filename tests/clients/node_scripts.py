"""Node clients run as their users run them: the packages of tests/clients/node, installed by
`npm ci` from its committed lockfile, then one `node` process a call that prints its result
as JSON, or a package's own command (`executable`: Claude Code's `claude`).

`npm ci` runs at most once a test session, and not at all while node_modules still holds
what the lockfile says (a stamp of the lockfile's hash, written after a good install), so a
warm run costs no network and no install. With no node, no npm or no registry the tests that
need them fail, saying why: a client test that skips would pass CI having tested nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent / "node"
MODULES = HERE / "node_modules"
STAMP = MODULES / ".installed-lockfile-sha256"


def _lock_hash() -> str:
    return hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: the Node client tests need Node.js and npm", pytrace=False)
    return path


def install() -> Path:
    """tests/clients/node/node_modules as the lockfile says; `npm ci` if it is missing or stale."""
    _tool("node")
    failure = _install(_tool("npm"))
    if failure:
        pytest.fail(failure, pytrace=False)
    return MODULES


@functools.cache
def _install(npm: str) -> str | None:
    """Why the install failed, or None; cached, so a failure is met once a session, not once a test."""
    if STAMP.is_file() and STAMP.read_text() == _lock_hash():
        return None
    # --prefer-offline: what npm's cache holds is used without asking the registry again.
    command = [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        return f"`npm ci` in {HERE} took over 240s: is the npm registry reachable?"
    if done.returncode != 0:
        return (f"`npm ci` in {HERE} failed ({done.returncode}): is the npm registry reachable?\n"
                f"{done.stdout}{done.stderr}")
    STAMP.write_text(_lock_hash())
    return None


def executable(name: str) -> Path:
    """The command `name` a package of tests/clients/node installs (node_modules/.bin/`name`)."""
    path = install() / ".bin" / name
    if not path.is_file():
        pytest.fail(f"`npm ci` in {HERE} left no {path}", pytrace=False)
    return path


def run(script: str, *args: str, env: dict[str, str], timeout: float = 60) -> Any:
    """Run tests/clients/node/`script` with `args` and `env`; its last line of stdout, as JSON."""
    install()
    done = subprocess.run([_tool("node"), str(HERE / script), *args], cwd=HERE, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})
    assert done.returncode == 0, f"node {script} {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
    return json.loads(done.stdout.splitlines()[-1])
