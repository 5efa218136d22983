"""Builds the one C helper, gateway/apis/chat/_events.c, when the package is installed.

A chat stream's plain events are rewritten in one pass of it, where CPython's own
searches take a pass for each question asked of every byte (bench/README.md,
issue 23). It is compiled with the compiler and flags this Python was built with
(`sysconfig`), next to its source, for an editable install and a wheel alike. Where
no compiler is found, or it fails, the install goes on without it: the gateway
then rewrites every event in Python, with the same output, more slowly.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # imported by tests/ops/test_build.py, which needs only compile_helper
    BuildHookInterface = object  # type: ignore[assignment,misc]

SOURCE = Path("gateway/apis/chat/_events.c")


def compile_helper(source: Path) -> Path | None:
    """The built module beside `source`, or None (and why, on stderr) if it could not be."""
    target = source.with_name(source.stem + sysconfig.get_config_var("EXT_SUFFIX"))
    link = shlex.split(sysconfig.get_config_var("LDSHARED") or "")
    if not link or shutil.which(link[0]) is None:
        print(f"gateway: no C compiler ({link[:1]}): {source.name} not built; streams are "
              "rewritten in Python", file=sys.stderr)
        return None
    command = [*link, *shlex.split(sysconfig.get_config_var("CCSHARED") or ""), "-O3",
               f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(target)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"gateway: {source.name} not built, streams are rewritten in Python:\n"
              f"{shlex.join(command)}\n{done.stderr}", file=sys.stderr)
        return None
    return target


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        target = compile_helper(root / SOURCE)
        if target is None:
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":  # an editable install imports it from the source tree
            build_data["force_include"][str(target)] = str(target.relative_to(root))
