"""Where training runs and in what precision: the device a config names, and its autocast."""

from __future__ import annotations

import contextlib

import torch

from gan_core.config import ConfigError, ExperimentConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device='cuda' is not allowed: no CUDA device is available here; use 'auto' or 'cpu'")
    return torch.device(name)


def autocast_for(config: ExperimentConfig, device: torch.device) -> contextlib.AbstractContextManager:
    precision = config.train.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
