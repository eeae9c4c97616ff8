"""The training step as one CUDA graph, captured once and replayed.

At the batch sizes GANs train at, a DCGAN step on a modern GPU is bound by the CPU launching
its few hundred small kernels, not by the GPU running them. Captured as a graph (D update(s),
G update, EMA and the running metric sums), a step costs one launch.

A replay repeats exactly what was captured, so everything that changes from step to step lives
in device memory the graph reads: the batch indices (copied into a fixed buffer before each
replay), the latents (the run's noise generator, registered with the graph so that every replay
draws new numbers), a scheduled learning rate (a tensor the loop refills), the EMA's warm-up
counter and Adam's step counts (both on the device). Steps that report metrics run eagerly,
so that their gradient norms are measured; they share every weight, moment and buffer with
the graph. What the graph cannot replay (see `graph_blocker`) keeps the eager step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gan_core.training.meter import Meter
from gan_core.training.state import TrainState, fused_adam_supported
from gan_core.training.step import GANPhases

# Eager steps on a side stream before the capture: they allocate the optimiser's moments,
# pick cuDNN's algorithms and create library handles, none of which may happen inside a capture.
WARMUP_STEPS = 3


def graph_blocker(state: TrainState, phases: object) -> str | None:
    """Why this run's step cannot be replayed as a CUDA graph, or None when it can."""
    config = state.config
    if state.device.type != "cuda":
        return f"the device is {state.device.type}, not CUDA"
    if not isinstance(phases, GANPhases):
        return "translation models (DiscoGAN) run their step eagerly"
    if phases.g_train is not state.generator or phases.d_train is not state.discriminator:
        return "the models are wrapped for data-parallel training (DDP), which runs eagerly"
    if state.batches.x.device.type != "cuda":
        return "the dataset does not fit in GPU memory, so its batches come from the host"
    if config.loss.instance_noise > 0:
        return "loss.instance_noise anneals its strength on the host every step"
    if config.loss.top_k < 1:
        return "top-k training (loss.top_k < 1) changes how many fakes G learns from as it anneals"
    if config.loss.r1_every > 1:
        return "lazy R1 (loss.r1_every > 1) alternates between two different steps"
    if not fused_adam_supported("cuda"):
        return "this torch has no fused CUDA Adam"
    return None


class GraphedStep:
    """Runs training steps like `train_step`, replaying the non-reporting ones as a CUDA graph."""

    def __init__(self, state: TrainState, phases: GANPhases, eager_step: Callable[[Meter, bool], None]) -> None:
        self.state, self.phases, self.eager_step = state, phases, eager_step
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_left = WARMUP_STEPS
        self.indices: torch.Tensor | None = None  # (d_steps, local batch): the next replay's batches
        self.metric_names: list[str] = []
        self.side_stream = torch.cuda.Stream(state.device)
        for optimizer in (state.opt_g, state.opt_d):
            for group in optimizer.param_groups:
                group["capturable"] = True  # Adam keeps its step counts on the device and never syncs
                if state.config.optim.lr_schedule != "constant":
                    # Refilled by the loop each step: a float would stay the rate the graph captured.
                    group["lr"] = torch.tensor(float(group["lr"]), device=state.device)

    def __call__(self, meter: Meter, report: bool) -> None:
        if report:
            self.eager_step(meter, True)
        elif self.graph is None and self.eager_left > 0:
            self._warm_up(meter)
        else:
            if self.graph is None:
                self._capture(meter)
            else:
                self._load_next_batches()
            self._replay(meter)

    def _warm_up(self, meter: Meter) -> None:
        self.side_stream.wait_stream(torch.cuda.current_stream(self.state.device))
        with torch.cuda.stream(self.side_stream):
            self.eager_step(meter, False)
        torch.cuda.current_stream(self.state.device).wait_stream(self.side_stream)
        self.eager_left -= 1

    def _load_next_batches(self) -> None:
        for row in self.indices:
            row.copy_(self.state.batches.next_index())

    def _capture(self, meter: Meter) -> None:
        """Record one step into the graph. Recording runs nothing, so the step counters are put
        back afterwards, and the caller replays the graph to take this step for real."""
        state, phases, ctx = self.state, self.phases, self.phases.ctx
        d_steps = state.config.train.d_steps
        self.indices = torch.stack([state.batches.next_index() for _ in range(d_steps)])
        recorder = _SumsOnly(meter)
        step, d_updates = state.step, ctx.d_updates
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(state.noise)
        phases.batches = _FixedBatches(state.batches, self.indices)
        torch.cuda.synchronize(state.device)
        try:
            with torch.cuda.graph(graph, stream=self.side_stream):
                self.eager_step(recorder, False)
        finally:
            phases.batches = state.batches
            state.step, ctx.d_updates = step, d_updates
        self.graph, self.metric_names = graph, recorder.names

    def _replay(self, meter: Meter) -> None:
        self.graph.replay()
        self.state.step += 1
        self.phases.ctx.d_updates += self.state.config.train.d_steps
        meter.count(self.metric_names)


class _FixedBatches:
    """Batches gathered through the fixed index buffer that is refilled before every replay."""

    def __init__(self, source, indices: torch.Tensor) -> None:
        self.source, self.indices, self.used = source, indices, 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        row = self.indices[self.used % len(self.indices)]
        self.used += 1
        return self.source.take(row)


class _SumsOnly:
    """A meter front for the capture: the graph adds into the running sums on every replay; the
    counts are kept on the host, one per replay (`Meter.count`)."""

    def __init__(self, meter: Meter) -> None:
        self.meter, self.names = meter, []

    def add(self, values: dict[str, torch.Tensor]) -> None:
        self.meter.accumulate(values)
        self.names += list(values)
