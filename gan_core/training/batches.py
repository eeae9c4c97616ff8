"""Shuffled minibatches from a dataset held in memory (on the training device when it fits).

Every rank draws the same permutation and takes its own slice of each global batch, so N
workers with batch B/N see exactly the batches one worker with batch B would see.
"""

from __future__ import annotations

import torch


def check_batch(global_batch: int, samples: int, world_size: int = 1) -> None:
    if global_batch % world_size:
        raise ValueError(f"train.batch_size={global_batch} is not divisible by {world_size} workers")
    if global_batch > samples:
        raise ValueError(f"train.batch_size={global_batch} exceeds the {samples} training samples")


class BatchSource:
    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        global_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_batch(global_batch, len(x), world_size)
        self.x, self.y = x, y
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.offset = rank * self.local_batch
        self._rng = torch.Generator().manual_seed(seed)
        self._set_order(torch.randperm(len(x), generator=self._rng))
        self._position = 0
        self.epoch = 0

    def _set_order(self, order: torch.Tensor) -> None:
        # Drawn on the CPU (the checkpoint keeps it there) and copied beside the data once per
        # epoch, so that picking a batch never copies indices from the host.
        self._order = order
        self._order_on_data = order.to(self.x.device)

    def next_index(self) -> torch.Tensor:
        """The indices of this worker's next batch, on the data's device."""
        if self._position + self.global_batch > len(self._order):  # drop the ragged tail
            self._set_order(torch.randperm(len(self.x), generator=self._rng))
            self._position = 0
            self.epoch += 1
        start = self._position + self.offset
        self._position += self.global_batch
        return self._order_on_data[start : start + self.local_batch]

    def take(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.x[index], (self.y[index] if self.y is not None else None)

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.take(self.next_index())

    def state_dict(self) -> dict[str, object]:
        return {"rng": self._rng.get_state(), "order": self._order, "position": self._position, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self._rng.set_state(state["rng"])  # type: ignore[arg-type]
        self._set_order(state["order"])  # type: ignore[arg-type]
        self._position = int(state["position"])  # type: ignore[arg-type]
        self.epoch = int(state["epoch"])  # type: ignore[arg-type]
