"""Experiment configuration: frozen dataclasses, one per component, checked where they are built.

A config is built from the defaults below, then a YAML file (or a shipped preset), then dotted
overrides such as ``optim.lr_g=2e-4``. Every bad value or unknown key raises ``ConfigError``
naming the key and what is allowed, before any work starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from gan_core.strict_yaml import load_yaml


class ConfigError(ValueError):
    """A configuration value or key is not acceptable; the message names it and what is allowed."""


def _check(condition: bool, key: str, allowed: str, value: object) -> None:
    if not condition:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


SEED_LIMIT = 2**32  # what numpy's and torch's generators both take


def _check_seed(key: str, value: int) -> None:
    _check(0 <= value < SEED_LIMIT, key, f"an integer in [0, {SEED_LIMIT - 1}]", value)


def absolute_root(root: str) -> str:
    """A local `data.root` as an absolute path (a URI, or no root, unchanged). A run's config is
    read again where the working directory differs (evaluate from elsewhere, Ray workers), and a
    relative path would point somewhere else there."""
    if not root or "://" in root:
        return root
    return os.path.abspath(os.path.expanduser(root))


@dataclass(frozen=True)
class DataConfig:
    name: str = "ring"  # a key of gan_core.data.DATASETS
    root: str = ""  # folder of IDX files, for mnist and fashion-mnist
    n_train: int = 100_000  # samples drawn for the synthetic sets (mixtures, stacked digits)
    seed: int = 0  # seed of the synthetic draw and of the train/test split

    def __post_init__(self) -> None:
        from gan_core.data import DATASETS  # lazy: keeps torch out of `ganpipe --help`

        _check(self.name in DATASETS, "data.name", f"one of {DATASETS.names()}", self.name)
        _check(self.n_train >= 100, "data.n_train", "an integer >= 100", self.n_train)
        _check_seed("data.seed", self.seed)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "mlp"  # a key of gan_core.models.MODELS
    latent_dim: int = 64
    g_width: int = 256  # hidden units (MLP) or base channel count (DCGAN) of the generator
    d_width: int = 256
    g_depth: int = 3  # hidden layers of the MLP generator; ignored by DCGAN
    d_depth: int = 3
    g_norm: Literal["batch", "none"] = "batch"
    d_norm: Literal["batch", "spectral", "layer", "none"] = "none"
    # How labels enter: "none" (unconditional), "acgan" (labels into G, an auxiliary
    # classifier head in D), "projection" (labels into G and into D's logit, Miyato & Koyama).
    conditioning: Literal["none", "acgan", "projection"] = "none"
    pack: int = 1  # PacGAN: the discriminator judges `pack` samples at once
    # Jacobian-based truncation (Tanielian et al. 2020): sampling keeps this share of latents,
    # those where G stretches space least (off the bridges between modes); 1 keeps them all.
    truncation: float = 1.0

    def __post_init__(self) -> None:
        from gan_core.models import MODELS, TRANSLATION_MODELS  # lazy: keeps torch out of `ganpipe --help`

        _check(self.name in MODELS, "model.name", f"one of {MODELS.names()}", self.name)
        _check(
            self.conditioning == "none" or self.name not in TRANSLATION_MODELS,
            "model.conditioning",
            f"'none' with model {self.name!r}, which translates samples rather than drawing them by class",
            self.conditioning,
        )
        for key in ("latent_dim", "g_width", "d_width"):
            _check(getattr(self, key) >= 1, f"model.{key}", "an integer >= 1", getattr(self, key))
        for key in ("g_depth", "d_depth"):
            _check(1 <= getattr(self, key) <= 16, f"model.{key}", "an integer in [1, 16]", getattr(self, key))
        _check(1 <= self.pack <= 16, "model.pack", "an integer in [1, 16]", self.pack)
        _check(
            self.pack == 1 or self.conditioning == "none",
            "model.pack",
            "1 when model.conditioning is not 'none' (packed samples have no single label)",
            self.pack,
        )
        _check(0.05 <= self.truncation <= 1, "model.truncation", "a number in [0.05, 1]", self.truncation)
        _check(
            self.truncation == 1 or (self.conditioning == "none" and self.name not in TRANSLATION_MODELS),
            "model.truncation",
            "1 for conditional and translation models (it truncates unconditional latents only)",
            self.truncation,
        )


@dataclass(frozen=True)
class LossConfig:
    name: str = "nonsaturating"  # a key of gan_core.losses.LOSSES
    r1_weight: float = 0.0  # gamma of the R1 penalty on real data (Mescheder et al. 2018)
    r1_every: int = 1  # lazy R1: on every Nth discriminator update only, N times as strong
    gp_weight: float = 10.0  # lambda of WGAN-GP's gradient penalty
    label_smoothing: float = 0.0  # one-sided: real targets become 1 - s (ganhacks)
    instance_noise: float = 0.0  # std of noise added to D's inputs, annealed linearly to 0
    aux_weight: float = 1.0  # weight of the AC-GAN classification loss
    # Translation models (DiscoGAN): distance between an input and its round trip A->B->A
    # (and B->A->B), and its weight beside the two adversarial losses (Kim et al. 2017 use 1).
    reconstruction: Literal["mse", "l1"] = "mse"
    reconstruction_weight: float = 1.0
    # Top-k training (Sinha et al. 2020): each generator update learns only from the fakes D
    # scores as most realistic. The kept fraction falls linearly from 1 to `top_k` over the
    # first `top_k_anneal` of train.steps (D must first learn what realistic is), then stays.
    top_k: float = 1.0
    top_k_anneal: float = 0.5

    def __post_init__(self) -> None:
        from gan_core.losses import LOSSES  # lazy: keeps torch out of `ganpipe --help`

        _check(self.name in LOSSES, "loss.name", f"one of {LOSSES.names()}", self.name)
        for key in ("r1_weight", "gp_weight", "instance_noise", "aux_weight", "reconstruction_weight"):
            value = getattr(self, key)
            _check(math.isfinite(value) and value >= 0, f"loss.{key}", "a finite number >= 0", value)
        _check(self.r1_every >= 1, "loss.r1_every", "an integer >= 1", self.r1_every)
        _check(0 < self.top_k <= 1, "loss.top_k", "a fraction in (0, 1]", self.top_k)
        _check(0 <= self.top_k_anneal <= 1, "loss.top_k_anneal", "a fraction in [0, 1]", self.top_k_anneal)
        _check(0 <= self.label_smoothing < 0.5, "loss.label_smoothing", "a number in [0, 0.5)", self.label_smoothing)
        _check(
            self.label_smoothing == 0 or LOSSES.get(self.name).supports_label_smoothing,
            "loss.label_smoothing",
            f"0 with loss {self.name!r}, whose real target is not a probability",
            self.label_smoothing,
        )

    def top_k_fraction(self, step: int, steps: int) -> float:
        """Fraction of the fakes that generator update `step` (1-based) of `steps` learns from."""
        if self.top_k >= 1:
            return 1.0
        done = (step - 1) / (self.top_k_anneal * steps) if self.top_k_anneal > 0 else 1.0
        return 1.0 - (1.0 - self.top_k) * min(done, 1.0)


@dataclass(frozen=True)
class OptimConfig:
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # Both learning rates stay constant, or from `decay_start` (a fraction of train.steps) fall
    # towards `decay_to` times their value at the last step, linearly or along a half cosine.
    lr_schedule: Literal["constant", "linear-decay", "cosine"] = "constant"
    decay_start: float = 0.0
    decay_to: float = 0.0

    def __post_init__(self) -> None:
        for key in ("lr_g", "lr_d"):
            value = getattr(self, key)
            _check(0 < value < 1, f"optim.{key}", "a number in (0, 1)", value)
        for key in ("beta1", "beta2"):
            value = getattr(self, key)
            _check(0 <= value < 1, f"optim.{key}", "a number in [0, 1)", value)
        _check(0 <= self.decay_start < 1, "optim.decay_start", "a number in [0, 1)", self.decay_start)
        _check(0 <= self.decay_to <= 1, "optim.decay_to", "a number in [0, 1]", self.decay_to)

    def lr_scale(self, step: int, steps: int) -> float:
        """Multiplier of lr_g and lr_d for generator update `step` (1-based) of `steps`."""
        done = (step - 1) / steps  # fraction of training behind this update, in [0, 1)
        if self.lr_schedule == "constant" or done < self.decay_start:
            return 1.0
        progress = (done - self.decay_start) / (1.0 - self.decay_start)
        linear = self.lr_schedule == "linear-decay"
        shape = 1.0 - progress if linear else 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.decay_to + (1.0 - self.decay_to) * shape


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000  # generator updates
    batch_size: int = 256  # global: split evenly over data-parallel workers
    d_steps: int = 1  # k discriminator updates per generator update (Goodfellow et al.)
    ema_decay: float = 0.999  # EMA of the generator's weights; 0 turns it off
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    # Layout of conv models' weights and of the image data (resident, so no per-step conversion):
    # channels_last is NHWC. auto: channels_last on CUDA and CPU, contiguous (NCHW) on other
    # devices. MLPs ignore it.
    # (Not on/off: YAML reads those as booleans.)
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"
    # Replay each non-reporting step as one CUDA graph (gan_core/training/graphed.py). auto: on
    # CUDA whenever the run allows it, else the eager step; always: fail when it does not; never.
    cuda_graphs: Literal["auto", "always", "never"] = "auto"
    # torch.compile G and D (fuses batch norm and activations into fewer kernels); the first
    # steps pay for the compilation (~30 s for DCGAN-64 on an H100). Measured in bench/train_step.py.
    compile: bool = False
    # max-autotune: the compiler also times alternative kernels for every convolution and matrix
    # product and keeps the fastest (minutes of tuning at the start; +25% at batch 1024 on an H100).
    compile_mode: Literal["default", "max-autotune"] = "default"
    # The generator update judges the last discriminator update's fakes again instead of drawing
    # new ones (as the PyTorch DCGAN example does): one forward pass of G less per step.
    reuse_fakes: bool = False
    log_every: int = 100  # metrics reach the hook every N steps (one host sync per N steps)
    checkpoint_every: int = 1000
    sample_every: int = 200  # frames of the training GIF
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "d_steps", "log_every", "checkpoint_every", "sample_every"):
            _check(getattr(self, key) >= 1, f"train.{key}", "an integer >= 1", getattr(self, key))
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints", "an integer >= 1", self.keep_checkpoints)
        _check(0 <= self.ema_decay < 1, "train.ema_decay", "a number in [0, 1)", self.ema_decay)
        _check_seed("train.seed", self.seed)


@dataclass(frozen=True)
class EvalConfig:
    n_samples: int = 2500  # generated samples per evaluation (the PacGAN protocol uses 2500)
    seed: int = 1234  # fixed latent seed, so two generators are compared on the same draws
    classifier_epochs: int = 40  # training of the feature classifier behind the image metrics
    classifier_images: int = 200_000  # ... but it sees at most this many images (MNIST: about 3 epochs)
    collapse_threshold: float = 0.5  # coverage below this fraction of modes/classes means collapse

    def __post_init__(self) -> None:
        _check(self.n_samples >= 10, "eval.n_samples", "an integer >= 10", self.n_samples)
        _check(self.classifier_epochs >= 1, "eval.classifier_epochs", "an integer >= 1", self.classifier_epochs)
        _check(self.classifier_images >= 64, "eval.classifier_images", "an integer >= 64", self.classifier_images)
        _check_seed("eval.seed", self.seed)
        _check(
            0 <= self.collapse_threshold <= 1, "eval.collapse_threshold", "a number in [0, 1]", self.collapse_threshold
        )


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _check(
            self.train.batch_size % self.model.pack == 0,
            "train.batch_size",
            f"a multiple of model.pack={self.model.pack}",
            self.train.batch_size,
        )
        self._check_translation_pairing()
        # A gradient penalty differentiates twice, which torch.compile's autograd cannot (torch 2.13).
        penalty = (
            "R1 (loss.r1_weight > 0)" if self.loss.r1_weight > 0 else "WGAN-GP" if self.loss.name == "wgan-gp" else ""
        )
        _check(
            not (self.train.compile and penalty),
            "train.compile",
            f"false with {penalty}: a gradient penalty differentiates twice, which compiled models cannot",
            self.train.compile,
        )

    def _check_translation_pairing(self) -> None:
        """A translation model needs a dataset of two domains, and only it can use one."""
        from gan_core.data import TRANSLATION_DATASETS  # lazy: torch stays out of --help
        from gan_core.models import TRANSLATION_MODELS  # lazy: torch stays out of --help

        translator, paired = self.model.name in TRANSLATION_MODELS, self.data.name in TRANSLATION_DATASETS
        _check(
            paired or not translator,
            "data.name",
            f"a two-domain dataset for model {self.model.name!r}: one of {sorted(TRANSLATION_DATASETS)}",
            self.data.name,
        )
        _check(
            translator or not paired,
            "model.name",
            f"a translation model for the two-domain dataset {self.data.name!r}: one of {sorted(TRANSLATION_MODELS)}",
            self.model.name,
        )
        if translator:  # the translation step has no top-k selection and draws no fakes to reuse
            _check(self.loss.top_k == 1, "loss.top_k", "1 for translation models", self.loss.top_k)
            _check(not self.train.reuse_fakes, "train.reuse_fakes", "false for translation models", True)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Dotted keys, as MLflow params and Tune search spaces use them."""
        return {
            f"{section}.{key}": value for section, values in self.to_dict().items() for key, value in values.items()
        }

    def hash(self) -> str:
        """Content hash of the resolved config (stable across runs and machines)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(ExperimentConfig)[f.name] for f in dataclasses.fields(ExperimentConfig)
}


def preset_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml") for p in resources.files("gan_core.presets").iterdir() if p.name.endswith(".yaml")
    )


def preset_path(name: str) -> Path:
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(preset_names())}")
    return Path(str(resources.files("gan_core.presets").joinpath(f"{name}.yaml")))


def load_config(
    path: str | Path | None = None,
    overrides: typing.Sequence[str] = (),
    base: dict[str, dict[str, Any]] | None = None,
) -> ExperimentConfig:
    """Defaults <- ``base`` (a nested dict) <- YAML file at ``path`` <- dotted ``overrides``."""
    nested: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    if base:
        _merge(nested, base, "base config")
    if path is not None:
        _merge(nested, _read_yaml(Path(path)), str(path))
    for item in overrides:
        key, value = _parse_override(item)
        section, name = key.split(".", 1)
        _merge(nested, {section: {name: value}}, f"override {item!r}")
    if isinstance(nested["data"].get("root"), str):
        nested["data"]["root"] = absolute_root(nested["data"]["root"])
    return from_dict(nested)


def from_dict(nested: dict[str, dict[str, Any]]) -> ExperimentConfig:
    """Build and validate a config from ``{section: {key: value}}`` (e.g. one saved in a checkpoint)."""
    unknown = set(nested) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}; allowed: {list(SECTIONS)}")
    sections = {}
    for name, cls in SECTIONS.items():
        values = dict(nested.get(name) or {})
        hints = typing.get_type_hints(cls)
        for key in values:
            if key not in hints:
                raise ConfigError(f"unknown config key {name}.{key}; allowed keys of {name}: {sorted(hints)}")
        sections[name] = cls(**{key: _coerce(f"{name}.{key}", value, hints[key]) for key, value in values.items()})
    return ExperimentConfig(**sections)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        content = load_yaml(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; pass a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text; pass a YAML file") from None
    except yaml.MarkedYAMLError as error:  # one line: what is wrong, and where in the file
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}: {error.problem or error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if content is None:
        return {}
    if not isinstance(content, dict) or not all(isinstance(v, dict | None) for v in content.values()):
        raise ConfigError(f"config file {path} must map sections ({', '.join(SECTIONS)}) to key: value maps")
    return {k: v or {} for k, v in content.items()}


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value, e.g. optim.lr_g=2e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key.count(".") != 1:
        raise ConfigError(f"override key {key!r} must be section.key; sections: {list(SECTIONS)}")
    return key, yaml.safe_load(raw) if raw.strip() else ""


def _merge(target: dict[str, dict[str, Any]], source: dict[str, Any], origin: str) -> None:
    for section, values in source.items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {section!r} in {origin}; allowed: {list(SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"section {section!r} in {origin} must be a map of key: value")
        target[section].update(values)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Turn YAML/CLI values into the declared type, refusing lossy or nonsensical conversions."""
    if typing.get_origin(annotation) is Literal:
        allowed = typing.get_args(annotation)
        _check(value in allowed, key, f"one of {list(allowed)}", value)
        return value
    if annotation is bool:
        _check(isinstance(value, bool), key, "true or false", value)
        return value
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok or (isinstance(value, float) and value.is_integer())
        _check(ok, key, "an integer", value)
        return int(value)
    if annotation is float:
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        _check(isinstance(value, int | float) and not isinstance(value, bool), key, "a number", value)
        return float(value)
    if annotation is str:
        _check(isinstance(value, str | int | float) and not isinstance(value, bool), key, "a string", value)
        return str(value)
    raise TypeError(f"{key}: unsupported annotation {annotation!r}")
