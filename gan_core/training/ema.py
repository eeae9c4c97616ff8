"""Exponential moving average of the generator's weights (Yazici et al. 2019; Karras et al.)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Warm up: early on the average would remember the random initialisation for ~1/(1-decay) steps.
        decay = min(self.decay, (1 + step) / (10 + step))
        params = [p for p in self.model.parameters()]
        torch._foreach_lerp_(params, [p.detach() for p in model.parameters()], 1.0 - decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)
