"""Everything a training run owns, and its checkpoint format.

A checkpoint is a plain dict of tensors, numbers and strings, so it loads with
``torch.load(..., weights_only=True)``: G, D, both optimisers, the EMA generator, the step,
the batch order and RNG states, and the resolved config.

For a translation model (DiscoGAN) "G" is the Translator (both generators, one optimiser,
one EMA), "D" the DomainCritics (both discriminators, one optimiser), and a second batch
source draws domain B independently of domain A.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_core.config import ExperimentConfig, OptimConfig, from_dict
from gan_core.data import Dataset
from gan_core.files import UnreadableFile, load_safely, save_atomically
from gan_core.models import GAN, MODELS, Discriminator, DomainCritics, Generator, Translator
from gan_core.training.batches import BatchSource, check_batch
from gan_core.training.device import resolve_device
from gan_core.training.ema import EMA

CHECKPOINT_FORMAT = 1
FIXED_BATCH = 64  # the latent batch drawn once and rendered through training (the GIF)


@dataclass
class TrainState:
    config: ExperimentConfig
    generator: Generator | Translator
    discriminator: Discriminator | DomainCritics
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: EMA | None
    batches: BatchSource
    noise: torch.Generator  # latents, fake labels, instance noise: resumable, per rank
    # The batch rendered through training (the GIF): latents, or for a translator held-out A samples.
    fixed_latent: torch.Tensor
    fixed_labels: torch.Tensor | None
    device: torch.device
    step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # whatever a caller wants kept (e.g. a run id)
    target_batches: BatchSource | None = None  # translation models: domain B, in its own order
    memory_format: torch.memory_format = torch.contiguous_format  # of conv weights and resident images

    @property
    def sampler(self) -> Generator | Translator:
        """The generator to sample from: the EMA copy when there is one."""
        return self.ema.model if self.ema is not None else self.generator

    def checkpoint(self) -> dict[str, Any]:
        cpu = lambda sd: {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in sd.items()}  # noqa: E731
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "config": self.config.to_dict(),
            "sample_shape": list(self.generator.sample_shape),
            "num_classes": self.generator.num_classes,
            "generator": cpu(self.generator.state_dict()),
            "discriminator": cpu(self.discriminator.state_dict()),
            "ema_generator": cpu(self.ema.model.state_dict()) if self.ema else None,
            "opt_g": _optimizer_to_cpu(self.opt_g.state_dict()),
            "opt_d": _optimizer_to_cpu(self.opt_d.state_dict()),
            "batches": self.batches.state_dict(),
            "target_batches": self.target_batches.state_dict() if self.target_batches else None,
            "rng": {"torch": torch.get_rng_state(), "noise": self.noise.get_state().cpu()},
            "fixed_latent": self.fixed_latent.cpu(),
            "fixed_labels": self.fixed_labels.cpu() if self.fixed_labels is not None else None,
            "extra": dict(self.extra),
        }

    def load_checkpoint(self, ckpt: dict[str, Any], rank: int = 0) -> None:
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {ckpt.get('format')!r} is not {CHECKPOINT_FORMAT}")
        self.generator.load_state_dict(ckpt["generator"])
        self.discriminator.load_state_dict(ckpt["discriminator"])
        if self.ema is not None and ckpt["ema_generator"] is not None:
            self.ema.model.load_state_dict(ckpt["ema_generator"])
            self.ema.restart_at(int(ckpt["step"]))
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        # A checkpoint written under another memory format holds the moments in that layout.
        _lay_out_state_like_params(self.opt_g)
        _lay_out_state_like_params(self.opt_d)
        # The optimiser's hyperparameters come from the config, not the checkpoint: Population
        # Based Training resumes a checkpoint under perturbed learning rates.
        optim = self.config.optim
        for optimizer, lr in ((self.opt_g, optim.lr_g), (self.opt_d, optim.lr_d)):
            for group in optimizer.param_groups:
                group["lr"], group["betas"] = lr, (optim.beta1, optim.beta2)
                # A CUDA-graphed run saves capturable=True, which Adam refuses off the GPU; a
                # graphed resume sets it again (graphed.py).
                group["capturable"] = optimizer.defaults["capturable"]
        self.batches.load_state_dict(ckpt["batches"])
        if self.target_batches is not None and ckpt.get("target_batches") is not None:
            self.target_batches.load_state_dict(ckpt["target_batches"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.noise.set_state(ckpt["rng"]["noise"])
        if rank:  # the checkpoint holds rank 0's noise stream; other ranks need streams of their own
            self.noise.manual_seed(self.config.train.seed * 1000 + rank + 1 + 7919 * int(ckpt["step"]))
        self.fixed_latent = ckpt["fixed_latent"].to(self.device)
        if ckpt["fixed_labels"] is not None:
            self.fixed_labels = ckpt["fixed_labels"].to(self.device)
        self.step = int(ckpt["step"])
        self.extra = dict(ckpt.get("extra") or {})


def build_models(config: ExperimentConfig, dataset: Dataset) -> GAN:
    if config.model.conditioning != "none" and not dataset.labelled:
        raise ValueError(
            f"model.conditioning={config.model.conditioning!r} needs labels; dataset {dataset.name!r} has none"
        )
    if dataset.translation and dataset.target.sample_shape != dataset.sample_shape:
        raise ValueError(
            f"dataset {dataset.name!r}: domains A {list(dataset.sample_shape)} and B "
            f"{list(dataset.target.sample_shape)} differ in shape; translation models here need one shape"
        )
    return MODELS.get(config.model.name)(config.model, dataset.sample_shape, dataset.num_classes)


def check_trainable(config: ExperimentConfig, dataset: Dataset, world_size: int = 1, trains_here: bool = True) -> None:
    """Raise ValueError (ConfigError) now if `config` cannot train on `dataset`, before anything
    slow (a feature classifier, a cluster) starts: the models for this data's shape and labels,
    the batch against the training set and the workers, and the device when training runs in
    this process (a driver may lack the GPUs its workers have). Building the models is cheap."""

    if trains_here:
        resolve_device(config.train.device)
    with torch.random.fork_rng(devices=[]):  # initialising weights draws from the global generator
        build_models(config, dataset)
    check_batch(config.train.batch_size, len(dataset.train_x), world_size)
    if dataset.translation:
        check_batch(config.train.batch_size, len(dataset.target.train_x), world_size)


def build_state(
    config: ExperimentConfig, dataset: Dataset, device: torch.device, rank: int = 0, world_size: int = 1
) -> TrainState:
    torch.manual_seed(config.train.seed)  # same initial weights on every rank
    gan = build_models(config, dataset)
    layout = memory_format_for(config, device, gan.generator, gan.discriminator)
    # Before the optimisers and the EMA copy exist, so that their tensors take the same layout.
    generator = gan.generator.to(device, memory_format=layout)
    discriminator = gan.discriminator.to(device, memory_format=layout)
    fused = fused_adam_supported(device.type)
    opt_g = build_adam(generator.parameters(), config.optim.lr_g, config.optim, fused)
    opt_d = build_adam(discriminator.parameters(), config.optim.lr_d, config.optim, fused)
    ema = EMA(generator, config.train.ema_decay) if config.train.ema_decay > 0 else None
    batches = _batch_source(dataset, config, device, rank, world_size, seed=config.train.seed, layout=layout)
    noise = torch.Generator(device=device).manual_seed(config.train.seed * 1000 + rank + 1)
    if dataset.translation:
        # Domain B in an order of its own, so that no pairing of A and B repeats epoch after epoch.
        target_batches = _batch_source(
            dataset.target, config, device, rank, world_size, seed=config.train.seed + 1, layout=layout
        )
        fixed_latent, fixed_labels = dataset.test_x[:FIXED_BATCH].to(device), None
    else:
        target_batches = None
        fixed = torch.Generator().manual_seed(config.eval.seed)
        fixed_latent = torch.randn(FIXED_BATCH, generator.latent_dim, generator=fixed).to(device)
        fixed_labels = (
            torch.arange(FIXED_BATCH, device=device) % generator.num_classes if generator.conditional else None
        )
    return TrainState(
        config,
        generator,
        discriminator,
        opt_g,
        opt_d,
        ema,
        batches,
        noise,
        fixed_latent,
        fixed_labels,
        device,
        target_batches=target_batches,
        memory_format=layout,
    )


def memory_format_for(config: ExperimentConfig, device: torch.device, *models: nn.Module) -> torch.memory_format:
    """channels_last (NHWC) for conv models when `train.memory_format` asks for it; the plain
    contiguous layout otherwise. auto: channels_last on CUDA, where cuDNN's NHWC kernels are the
    fast ones, and on CPU, where oneDNN's are (measured on 2 cores: 15-32% more steps/s for the
    digits presets, none lost on stacked digits); contiguous elsewhere (Apple's MPS, say)."""
    choice = config.train.memory_format
    if choice == "auto":
        choice = "channels_last" if device.type in ("cuda", "cpu") else "contiguous"
    convolutional = any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for model in models for m in model.modules())
    return torch.channels_last if choice == "channels_last" and convolutional else torch.contiguous_format


@functools.cache
def fused_adam_supported(device_type: str) -> bool:
    """Whether this torch has a fused (single-kernel) Adam for the device: CUDA, and CPU since 2.4."""
    try:
        torch.optim.Adam([torch.zeros(1, device=device_type, requires_grad=True)], fused=True)
    except RuntimeError:
        return False
    return True


def build_adam(params, lr: float, optim: OptimConfig, fused: bool) -> torch.optim.Adam:
    """Adam as the config sets it; `fused` picks the single-kernel implementation (same update)."""
    return torch.optim.Adam(params, lr=lr, betas=(optim.beta1, optim.beta2), **({"fused": True} if fused else {}))


def _lay_out_state_like_params(optimizer: torch.optim.Optimizer) -> None:
    """Give each moment tensor its parameter's strides. Fused Adam on CPU (torch 2.13) does not
    check that they match: a channels_last parameter whose moments came back NCHW from a checkpoint
    of a contiguous run gets a wrong update (off by about the learning rate per element), silently."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            moments = optimizer.state.get(param, {})
            for name, value in moments.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    moments[name] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _batch_source(
    dataset: Dataset,
    config: ExperimentConfig,
    device: torch.device,
    rank: int,
    world_size: int,
    seed: int,
    layout: torch.memory_format = torch.contiguous_format,
) -> BatchSource:
    data_device = device if _fits_on(device, dataset) else torch.device("cpu")
    images = dataset.train_x.to(data_device)
    if images.dim() == 4:  # laid out once here: indexing a batch out of it keeps the layout
        images = images.contiguous(memory_format=layout)
    return BatchSource(
        images,
        dataset.train_y.to(data_device) if dataset.train_y is not None else None,
        config.train.batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )


def _fits_on(device: torch.device, dataset: Dataset) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return dataset.train_x.numel() * 4 < free // 4


def _optimizer_to_cpu(state: dict[str, Any]) -> dict[str, Any]:
    # A CUDA-graphed run keeps a scheduled learning rate in a device tensor: saved as a number.
    number = lambda v: v.item() if torch.is_tensor(v) and v.dim() == 0 else v  # noqa: E731
    return {
        "state": {
            k: {n: t.detach().cpu() if torch.is_tensor(t) else t for n, t in v.items()}
            for k, v in state["state"].items()
        },
        "param_groups": [{k: number(v) for k, v in group.items()} for group in state["param_groups"]],
    }


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    """Write atomically: a crash mid-write never leaves a half checkpoint under the final name."""
    return save_atomically(ckpt, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Safe load: tensors and plain containers only, never arbitrary pickled objects. A damaged
    file raises UnreadableFile (a ValueError) naming it."""
    try:
        ckpt = load_safely(path)
    except UnreadableFile as error:
        raise UnreadableFile(f"checkpoint {error}") from None
    problem = checkpoint_problem(ckpt)
    if problem:
        raise UnreadableFile(f"checkpoint {path} is not a ganpipe training checkpoint: {problem}")
    return ckpt


# What every reader of a checkpoint relies on (format 1); the rest is read only when resuming.
CHECKPOINT_KEYS = ("format", "step", "config", "generator", "discriminator")


def checkpoint_problem(ckpt: Any) -> str | None:
    """What makes a loaded torch file something other than one of our checkpoints, or None."""
    if not isinstance(ckpt, dict):
        return f"it holds a {type(ckpt).__name__}, not a dict"
    missing = [key for key in CHECKPOINT_KEYS if key not in ckpt]
    if missing:
        return f"it lacks {', '.join(missing)} (has {', '.join(map(str, list(ckpt)[:8])) or 'no keys'})"
    if ckpt["format"] != CHECKPOINT_FORMAT:
        return f"its format is {ckpt['format']!r}; this version reads format {CHECKPOINT_FORMAT}"
    if not isinstance(ckpt["config"], dict):
        return f"its config is a {type(ckpt['config']).__name__}, not a dict"
    return None


def generator_from_checkpoint(ckpt: dict[str, Any], use_ema: bool = True) -> Generator | Translator:
    """Rebuild the (EMA) generator (a Translator for translation models) of a checkpoint, in eval
    mode on CPU; no dataset needed."""
    config = from_dict(ckpt["config"])
    generator = MODELS.get(config.model.name)(config.model, tuple(ckpt["sample_shape"]), ckpt["num_classes"]).generator
    weights = ckpt["ema_generator"] if use_ema and ckpt.get("ema_generator") is not None else ckpt["generator"]
    generator.load_state_dict(weights)
    return generator.eval()
