"""What the ranks of a data-parallel run must decide together: whether to stop, and whether a rank
diverged.

A rank that stopped alone would leave the others waiting in DDP's next all-reduce, so every rank
takes part in the same small all-reduces at the same steps. At report steps the ranks agree on
divergence and stop requests; in between, on stop requests only, about every `STOP_CHECK_S`
seconds. A stop used to wait for the next report step (`train.log_every`, 200 steps in most
presets): tens of seconds to minutes on CPU or with large models, past the 30 s a pod evicted or
a flow run cancelled is given before it is killed. How many steps make `STOP_CHECK_S` is
derived from the slowest rank's pace, which the report's all-reduce hands to every rank, so all
ranks check at the same steps without asking one another when.
"""

from __future__ import annotations

import torch

STOP_CHECK_S = 1.0  # between report steps, the ranks ask one another about stopping this often


class NonFiniteLossError(FloatingPointError):
    """Training produced NaN or infinity; the last checkpoint written before it is intact."""


class RankAgreement:
    """The collective decisions of `world_size` ranks; with one rank, no collective at all."""

    def __init__(self, world_size: int, device: torch.device | None, log_every: int) -> None:
        self.world_size = world_size
        self.device = device
        self.log_every = log_every
        # Every step until the first report has measured the pace (an all-reduce of one number).
        self.check_every = 1

    @property
    def _collective(self) -> bool:
        return self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()

    def at_report(self, metrics: dict[str, float], step: int, stop_requested: bool, seconds_per_step: float) -> bool:
        """Raise NonFiniteLossError if any rank's metrics are NaN or infinite; else return whether
        any rank was asked to stop. Also sets how many steps pass between the stop checks."""
        bad = {name: value for name, value in metrics.items() if value != value or abs(value) == float("inf")}
        if not self._collective:
            if bad:
                raise _diverged(step, str(bad))
            return stop_requested
        flags = torch.tensor([float(bool(bad)), float(stop_requested), seconds_per_step], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        any_bad, any_stop, slowest = flags.tolist()
        self.check_every = max(1, min(self.log_every, int(STOP_CHECK_S / max(slowest, 1e-9))))
        if any_bad == 0.0:
            return any_stop > 0.0
        by_rank: list[dict[str, float]] = [{} for _ in range(self.world_size)]
        torch.distributed.all_gather_object(by_rank, bad)
        raise _diverged(step, "; ".join(f"rank {rank}: {found}" for rank, found in enumerate(by_rank) if found))

    def stop_check_due(self, step: int) -> bool:
        """Whether the ranks ask one another about stopping after `step` (not a report step)."""
        return self._collective and step % self.check_every == 0

    def any_rank_asked_to_stop(self, stop_requested: bool) -> bool:
        flag = torch.tensor([float(stop_requested)], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return flag.item() > 0.0


def _diverged(step: int, where: str) -> NonFiniteLossError:
    error = NonFiniteLossError(
        f"non-finite training metrics by step {step}: {where}; training stopped, the last checkpoint "
        "written before this step is intact (try a lower learning rate, or R1 / gradient penalty)"
    )
    error.step = step  # an attribute, not an argument: the error still pickles (Ray) as it did
    return error
