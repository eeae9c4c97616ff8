"""Files that are either whole or absent: what training and evaluation write and read back later."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class UnreadableFile(ValueError):
    """A saved file (checkpoint, cached classifier) that torch cannot load: truncated or not one."""


def save_atomically(obj: Any, path: str | Path) -> Path:
    """torch.save to a temporary file beside `path`, then rename: a crash mid-write never leaves
    a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_safely(path: str | Path) -> Any:
    """torch.load of tensors and plain containers only (never arbitrary pickled objects), on the
    CPU; a file that is not a whole torch file raises UnreadableFile naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch's unpickler fails in many ways on foreign bytes
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if not first or "weights_only" in first or isinstance(error, IndexError | KeyError):
            first = "not a torch file of tensors"  # torch's own advice (weights_only=False) is unsafe here
        raise UnreadableFile(f"{path} cannot be read as a torch file ({first}); it may be truncated") from None
