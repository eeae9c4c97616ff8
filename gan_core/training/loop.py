"""The training loop: k discriminator steps, one generator step, EMA, report. Repeat.

Metrics stay on the device and are read once per `train.log_every` steps, so the loop never
waits on the accelerator in between (data-parallel ranks also read one stop flag about once a
second, see agreement.py). What a discriminator or generator step does depends on the
kind of model: a GAN drawing from noise (`GANPhases`) or a translation model such as DiscoGAN,
whose "generator" is a pair of generators and "discriminator" a critic per domain
(`TranslationPhases`); the loop around them is the same.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import torch
from torch import nn

from gan_core.config import ExperimentConfig
from gan_core.data import Dataset
from gan_core.losses import LOSSES
from gan_core.models import is_translator
from gan_core.training.agreement import RankAgreement
from gan_core.training.device import autocast_for, resolve_device
from gan_core.training.graphed import GraphedStep, graph_blocker
from gan_core.training.hooks import Hook, HookList
from gan_core.training.meter import Meter
from gan_core.training.state import TrainState, build_state
from gan_core.training.step import GANPhases, StepContext
from gan_core.training.stopping import StopRequest, TrainingStopped
from gan_core.training.translation_step import TranslationPhases


def fit(
    config: ExperimentConfig,
    dataset: Dataset,
    hooks: Hook | list[Hook] | None = None,
    resume_from: dict | None = None,
    rank: int = 0,
    world_size: int = 1,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    device: torch.device | None = None,
    stop: StopRequest | None = None,
) -> TrainState:
    """Train `config` on `dataset` until `config.train.steps`; returns the final state.

    `resume_from` is a checkpoint dict; training continues from its step with its optimiser,
    EMA, batch order and RNG states. `wrap` (e.g. DistributedDataParallel) is applied to G
    and D for the update that trains each; `rank`/`world_size` pick this worker's data.
    Once `stop` is requested, the step in progress ends with a checkpoint and `TrainingStopped`
    is raised: at the next step in one process; within about a second when the ranks of a
    data-parallel run must agree on it (any rank's request stops them all; see agreement.py).
    """
    hook = hooks if isinstance(hooks, Hook) else HookList(hooks or [])
    state, phases = start_training(config, dataset, device, rank, world_size, wrap, resume_from)
    run_step = step_runner(state, phases)
    ctx = phases.ctx
    train = config.train
    meter = Meter()
    ranks = RankAgreement(world_size, state.device, train.log_every)
    hook.on_start(state)
    clock, last_step = time.perf_counter(), state.step

    while state.step < train.steps:
        step = state.step + 1
        report = step % train.log_every == 0 or step % train.checkpoint_every == 0 or step == train.steps
        ctx.instance_noise = config.loss.instance_noise * max(0.0, 1.0 - state.step / train.steps)
        ctx.top_k = config.loss.top_k_fraction(step, train.steps)
        if config.optim.lr_schedule != "constant":
            _scale_learning_rates(state, config.optim.lr_scale(step, train.steps))

        run_step(meter, report)
        asked = stop is not None and stop.requested
        stopping = world_size == 1 and asked

        # Phase 4: report. Reading the meter is the loop's only host sync (with the ranks' stop checks).
        if report:
            metrics = meter.read()
            elapsed = time.perf_counter() - clock
            stopping = ranks.at_report(metrics, step, asked, elapsed / (step - last_step))
            per_worker = (step - last_step) * state.batches.local_batch * train.d_steps / max(elapsed, 1e-9)
            metrics.update(
                samples_per_s_worker=per_worker, samples_per_s=per_worker * world_size, epoch=state.batches.epoch
            )
            clock, last_step = time.perf_counter(), step
            if step % train.log_every == 0 or step == train.steps:
                hook.on_metrics(step, metrics, state)
        elif ranks.stop_check_due(step):
            stopping = ranks.any_rank_asked_to_stop(asked)
        if step % train.sample_every == 0 or step == train.steps:
            hook.on_samples(step, sample_fixed(state), state)
        if step % train.checkpoint_every == 0 or step == train.steps or stopping:
            hook.on_checkpoint(step, state.checkpoint(), state)
        if stopping:
            raise _stopped(stop, step)

    hook.on_end(state)
    return state


def _stopped(stop: StopRequest | None, step: int) -> TrainingStopped:
    if stop is not None and stop.requested:
        return stop.stopped_at(step)
    return TrainingStopped(step, "another rank was asked to stop")


def _scale_learning_rates(state: TrainState, scale: float) -> None:
    """`optim.lr_schedule`: both optimisers at their configured rate times `scale`."""
    optim = state.config.optim
    for optimizer, lr in ((state.opt_g, optim.lr_g), (state.opt_d, optim.lr_d)):
        for group in optimizer.param_groups:
            if torch.is_tensor(group["lr"]):  # read by a CUDA graph's Adam: refilled, not replaced
                group["lr"].fill_(lr * scale)
            else:
                group["lr"] = lr * scale


def start_training(
    config: ExperimentConfig,
    dataset: Dataset,
    device: torch.device | None = None,
    rank: int = 0,
    world_size: int = 1,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    resume_from: dict | None = None,
) -> tuple[TrainState, GANPhases | TranslationPhases]:
    """The state and the step's phases that `fit` drives (benchmarks drive them the same way)."""
    device = device or resolve_device(config.train.device)
    if device.type == "cuda":
        # Shapes never change during training, so cuDNN's one-off search for the fastest
        # convolution algorithms pays for itself within the first steps.
        torch.backends.cudnn.benchmark = True
    state = build_state(config, dataset, device, rank, world_size)
    if config.train.compile:  # before a checkpoint's Adam moments are laid out like the weights
        compile_models(state)
    if resume_from is not None:
        state.load_checkpoint(resume_from, rank)
    g_train = wrap(state.generator) if wrap else state.generator
    d_train = wrap(state.discriminator) if wrap else state.discriminator
    ctx = StepContext(
        loss=LOSSES.get(config.loss.name)(),
        loss_cfg=config.loss,
        noise=state.noise,
        autocast=autocast_for(config, device),
        num_classes=state.generator.num_classes,
        d_updates=state.step * config.train.d_steps,  # a resumed run keeps lazy R1's rhythm
    )
    phases = (TranslationPhases if is_translator(state.generator) else GANPhases)(state, ctx, d_train, g_train)
    return state, phases


def compile_models(state: TrainState) -> None:
    """`train.compile`: G and D compiled in place (their state dicts keep their keys). The EMA
    copy, only ever sampled from, stays eager."""
    if state.memory_format == torch.channels_last:
        # cuDNN hands back the weight gradient of a convolution over a 1x1 map (DCGAN's projection
        # of z, right after the latent is unflattened) in NCHW even when the weight is channels_last,
        # which compiled code asserts against (torch 2.11). Contiguous, that weight costs nothing.
        layers = list(state.generator.modules())
        for before, layer in zip(layers, layers[1:], strict=False):
            if isinstance(before, nn.Unflatten) and isinstance(layer, nn.ConvTranspose2d | nn.Conv2d):
                layer.weight.data = layer.weight.data.contiguous()
    # Inductor's own CUDA graphs stay off: GraphedStep captures the whole step, optimisers included.
    mode = {"default": None, "max-autotune": "max-autotune-no-cudagraphs"}[state.config.train.compile_mode]
    state.generator.compile(mode=mode)
    state.discriminator.compile(mode=mode)


def step_runner(state: TrainState, phases: GANPhases | TranslationPhases) -> Callable[[Meter, bool], None]:
    """What runs one training step, `run(meter, report)`: the step replayed as a CUDA graph when
    `train.cuda_graphs` and the run allow it (see `graph_blocker`), else `train_step`."""
    eager = functools.partial(train_step, state, phases)
    choice = state.config.train.cuda_graphs
    if choice == "never":
        return eager
    blocker = graph_blocker(state, phases)
    if blocker is None:
        return GraphedStep(state, phases, eager)
    if choice == "always":
        raise ValueError(f"train.cuda_graphs='always', but this run cannot use CUDA graphs: {blocker}")
    return eager


def train_step(state: TrainState, phases: GANPhases | TranslationPhases, meter: Meter, report: bool) -> None:
    """One training step, phases 1-3; `report` asks the phases for their metrics (kept on the device)."""
    d_steps = state.config.train.d_steps
    # Phase 1: the discriminator, k times (Goodfellow et al., Algorithm 1).
    for k in range(d_steps):
        meter.add(phases.discriminator(measure=report and k == d_steps - 1))

    # Phase 2: the generator, once.
    meter.add(phases.generator(measure=report))

    # Phase 3: the moving average of G that we actually sample from.
    state.step += 1
    if state.ema is not None:
        state.ema.update(state.generator)


@torch.no_grad()
def sample_fixed(state: TrainState) -> torch.Tensor:
    """The fixed latent batch through the sampling generator, on CPU, in float32."""
    sampler = state.sampler
    was_training = sampler.training
    sampler.eval()
    samples = sampler(state.fixed_latent, state.fixed_labels).float().cpu()
    sampler.train(was_training)
    return samples
