"""The install's one compiled part (hatch_build.py): the stream rewrite's C helper is built
where a compiler is found, and an install without one goes on, with the Python rewrite."""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig
from pathlib import Path

import hatch_build
from gateway.apis.chat import _events

SOURCE = Path(hatch_build.__file__).parent / hatch_build.SOURCE


def test_the_installed_gateway_has_the_helper_built():
    assert Path(_events.__file__).name.startswith("_events.")
    assert _events.rewrite(b'data: {"model":"m"}\n\n', b'"model":"m"', b'"model":"a"', (),
                           True) == (b'data: {"model":"a"}\n\n', 21, 0, None, None)


def test_the_helper_builds_from_its_source(tmp_path):
    source = tmp_path / SOURCE.name
    shutil.copy(SOURCE, source)

    built = hatch_build.compile_helper(source)

    assert built is not None and built.parent == tmp_path
    spec = importlib.util.spec_from_file_location("_events", built)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.rewrite(b"data: [DONE]\n\n", b'"model":"m"', b'"model":"a"', (), True) == (
        b"", 14, 2, None, None)


def test_no_compiler_means_no_helper_and_says_why(tmp_path, monkeypatch, capsys):
    config = sysconfig.get_config_var
    monkeypatch.setattr(sysconfig, "get_config_var", lambda name: (
        "no-such-compiler -shared" if name == "LDSHARED" else config(name)))

    assert hatch_build.compile_helper(SOURCE) is None
    assert "no C compiler" in capsys.readouterr().err


def test_a_failed_build_means_no_helper_and_shows_the_error(tmp_path, capsys):
    source = tmp_path / "_events.c"
    source.write_text("this is not C\n")

    assert hatch_build.compile_helper(source) is None
    assert "not built" in capsys.readouterr().err and not list(tmp_path.glob("*.so"))
