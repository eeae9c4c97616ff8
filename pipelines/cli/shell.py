"""Commands printed for a person to run next, spelt so that they work as printed in a fresh shell."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def runnable(tool: str) -> str:
    """`tool` (ganpipe, mlflow, prefect) as a fresh shell here would run this installation's copy:
    its bare name when PATH finds that copy first, else its path (`.venv/bin/ganpipe` from the
    checkout). `make demo` runs with .venv/bin off PATH, where a bare name said "command not found".
    Checked: shutil.which answers "what would PATH run"; nothing in the standard library spells
    a path for a shell."""
    ours = Path(sys.executable).parent / tool
    if not ours.exists():
        return tool
    found = shutil.which(tool)
    if found and Path(found).resolve() == ours.resolve():
        return tool
    relative = os.path.relpath(ours)
    return relative if not relative.startswith("..") else str(ours)
