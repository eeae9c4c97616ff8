"""Progress lines with rate and ETA, for a terminal or a log file alike."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from gan_core.training.hooks import Hook
from gan_core.training.state import TrainState

HEADLINE = ("d_loss", "g_loss", "d_real", "d_fake", "g_rec_a", "g_rec_b", "coverage")


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class ProgressPrinter(Hook):
    def __init__(self, write: Callable[[str], None] | None = None, prefix: str = "") -> None:
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.prefix = prefix
        self._start_time = 0.0
        self._last_time, self._last_step = 0.0, 0

    def on_start(self, state: TrainState) -> None:
        self._start_time = self._last_time = time.perf_counter()
        self._last_step = state.step
        total = state.config.train.steps
        verb = f"resuming at step {state.step}" if state.step else "starting"
        self.write(f"{self.prefix}{verb}: {total} steps, batch {state.config.train.batch_size}, device {state.device}")

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        total = state.config.train.steps
        now = time.perf_counter()
        # Since the last line, as samples/s is: the first steps' one-off costs (allocation, cuDNN's
        # search, compilation) would otherwise drag the rate down, and the ETA up, for the whole run.
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        elapsed = now - self._start_time
        eta = (total - step) / rate if rate > 0 else float("inf")
        shown = " ".join(f"{k} {metrics[k]:.3f}" for k in HEADLINE if k in metrics)
        self.write(
            f"{self.prefix}step {step}/{total} ({100 * step / total:3.0f}%) | {rate:.1f} it/s "
            f"{rate * self._samples_per_step(state):.0f} samples/s | elapsed {format_duration(elapsed)} "
            f"ETA {format_duration(eta)} | {shown}"
        )

    @staticmethod
    def _samples_per_step(state: TrainState) -> int:
        """Real samples the discriminator reads per step, over all ranks: both rates on a line then
        come from the same interval (samples/s was the loop's window, which excludes the hooks)."""
        return state.config.train.batch_size * state.config.train.d_steps
