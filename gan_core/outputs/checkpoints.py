"""Checkpoints in a local folder: `step-000123.pt`, the newest K kept, written atomically."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gan_core.training.hooks import Hook
from gan_core.training.state import TrainState, load_checkpoint, save_checkpoint

PATTERN = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_steps(folder: str | Path) -> list[int]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := PATTERN.match(p.name)))


def latest_checkpoint(folder: str | Path) -> dict[str, Any] | None:
    steps = checkpoint_steps(folder)
    return load_checkpoint(Path(folder) / f"step-{steps[-1]:06d}.pt") if steps else None


class FolderCheckpointer(Hook):
    def __init__(self, folder: str | Path, keep: int) -> None:
        self.folder, self.keep = Path(folder), keep
        self.last_path: Path | None = None

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], state: TrainState) -> None:
        self.last_path = save_checkpoint(checkpoint, self.folder / f"step-{step:06d}.pt")
        for old in checkpoint_steps(self.folder)[: -self.keep]:
            (self.folder / f"step-{old:06d}.pt").unlink(missing_ok=True)
