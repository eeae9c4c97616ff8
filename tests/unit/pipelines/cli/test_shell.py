"""The commands `ganpipe pipeline` prints for next steps run as printed in a fresh shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipelines.cli.shell import runnable

BIN = Path(sys.executable).parent


def test_a_tool_off_path_is_spelt_as_its_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    spelt = runnable("ganpipe")
    assert Path(spelt).resolve() == (BIN / "ganpipe").resolve()
    done = subprocess.run(f"{spelt} --help", shell=True, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "Usage: ganpipe" in done.stdout


def test_a_tool_path_finds_is_spelt_bare(monkeypatch):
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}/usr/bin")
    assert runnable("mlflow") == "mlflow"


def test_a_tool_this_installation_lacks_is_left_bare(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert runnable("no-such-tool") == "no-such-tool"
