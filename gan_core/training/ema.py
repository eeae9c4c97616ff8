"""Exponential moving average of the generator's weights (Yazici et al. 2019; Karras et al.)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        # Updates are counted on the model's device, so that a CUDA graph of the training step
        # replays the warm-up below step after step instead of freezing the decay it captured.
        self.updates = torch.zeros((), device=next(model.parameters()).device)

    def restart_at(self, step: int) -> None:
        """Continue a resumed run's warm-up where it left off."""
        self.updates.fill_(step)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates.add_(1)
        # Warm up: early on the average would remember the random initialisation for ~1/(1-decay) steps.
        decay = torch.clamp((1 + self.updates) / (10 + self.updates), max=self.decay)
        mine = list(self.model.parameters())
        delta = torch._foreach_sub([p.detach() for p in model.parameters()], mine)
        torch._foreach_mul_(delta, 1 - decay)  # a tensor factor: no host sync, and graph-safe
        torch._foreach_add_(mine, delta)
        for own, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            own.copy_(theirs)
