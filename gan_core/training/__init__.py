"""Training: the loop (`fit`), its hooks, the state and the checkpoint format."""

from gan_core.training.agreement import NonFiniteLossError
from gan_core.training.device import resolve_device
from gan_core.training.hooks import Hook, HookList
from gan_core.training.loop import (
    fit,
    sample_fixed,
    start_training,
    step_runner,
    train_step,
)
from gan_core.training.meter import Meter
from gan_core.training.state import (
    TrainState,
    build_models,
    generator_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from gan_core.training.stopping import StopRequest, TrainingStopped, stop_on_signals

__all__ = [
    "Hook",
    "HookList",
    "Meter",
    "NonFiniteLossError",
    "StopRequest",
    "TrainState",
    "TrainingStopped",
    "build_models",
    "fit",
    "generator_from_checkpoint",
    "load_checkpoint",
    "resolve_device",
    "sample_fixed",
    "save_checkpoint",
    "start_training",
    "stop_on_signals",
    "step_runner",
    "train_step",
]
