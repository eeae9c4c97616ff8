"""How a caller follows a training run: metrics every N steps, checkpoints every M steps.

`fit` calls these methods in order; override the ones you need. Ray Train, MLflow, the CLI's
progress lines and the picture writers are all hooks; the loop knows none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from gan_core.training.state import TrainState


class Hook:
    def on_start(self, state: TrainState) -> None:
        """Before the first step (also after a resume; `state.step` says where)."""

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        """Averages over the last `train.log_every` steps, plus throughput."""

    def on_samples(self, step: int, samples: torch.Tensor, state: TrainState) -> None:
        """The EMA generator's output for the fixed latent batch, every `train.sample_every` steps."""

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], state: TrainState) -> None:
        """A complete checkpoint (CPU tensors), every `train.checkpoint_every` steps and at the end."""

    def on_end(self, state: TrainState) -> None:
        """After the last step."""


class HookList(Hook):
    def __init__(self, hooks: Sequence[Hook | None]) -> None:
        self.hooks = [h for h in hooks if h is not None]

    def on_start(self, state):
        for hook in self.hooks:
            hook.on_start(state)

    def on_metrics(self, step, metrics, state):
        for hook in self.hooks:
            hook.on_metrics(step, metrics, state)

    def on_samples(self, step, samples, state):
        for hook in self.hooks:
            hook.on_samples(step, samples, state)

    def on_checkpoint(self, step, checkpoint, state):
        for hook in self.hooks:
            hook.on_checkpoint(step, checkpoint, state)

    def on_end(self, state):
        for hook in self.hooks:
            hook.on_end(state)
