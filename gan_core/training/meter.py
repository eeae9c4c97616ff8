"""Running means of a step's scalar metrics, summed on their device until read."""

from __future__ import annotations

import torch


class Meter:
    """The sums are created once and then only added to in place, so a CUDA graph of the step
    can add to them on every replay (`accumulate`) while the host keeps the counts (`count`)."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, values: dict[str, torch.Tensor]) -> None:
        self.accumulate(values)
        self.count(values)

    def accumulate(self, values: dict[str, torch.Tensor]) -> None:
        for name, value in values.items():
            if name not in self._sums:
                self._sums[name] = torch.zeros((), device=value.device)
            self._sums[name].add_(value.detach())

    def count(self, names) -> None:
        for name in names:
            self._counts[name] = self._counts.get(name, 0) + 1

    def read(self) -> dict[str, float]:
        """The means since the last read (one host sync), and a fresh start."""
        names = [n for n in self._sums if self._counts.get(n)]
        if not names:
            return {}
        values = torch.stack([self._sums[n] for n in names]).cpu().tolist()
        means = {n: v / self._counts[n] for n, v in zip(names, values, strict=True)}
        torch._foreach_zero_(list(self._sums.values()))
        self._counts.clear()
        return means
