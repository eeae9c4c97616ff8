"""Hooks that leave a run's results in a local folder: progress lines, checkpoints, pictures."""

from gan_core.outputs.checkpoints import FolderCheckpointer, checkpoint_steps, latest_checkpoint
from gan_core.outputs.progress import ProgressPrinter, format_duration
from gan_core.outputs.recorder import (
    RunRecorder,
    frame_title,
    sample_picture,
    training_picture,
    translation_picture,
)

__all__ = [
    "FolderCheckpointer",
    "ProgressPrinter",
    "RunRecorder",
    "checkpoint_steps",
    "format_duration",
    "frame_title",
    "latest_checkpoint",
    "sample_picture",
    "training_picture",
    "translation_picture",
]
