"""What a search is asked for (`SearchOptions`), what each trial is told (`TrialSpec`), what a
search returns (`SearchResult`), and how one ends when someone stops it (`SearchInterrupted`)."""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from gan_core.config import ExperimentConfig, from_dict
from pipelines.train.options import HookFactory


@dataclass(frozen=True)
class SearchOptions:
    space: str  # a shipped space name or a YAML path
    num_samples: int = 8
    scheduler: Literal["asha", "pbt", "fifo"] = "asha"
    search: Literal["random", "optuna"] = "random"
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    workers_per_trial: int = 1  # > 1: each trial drives a TorchTrainer; CPUs and GPUs split among its workers
    milestones: int = 4  # evaluations per trial; ASHA and PBT decide at these
    eval_samples: int = 1000
    seed: int = 0
    max_failures: int = 2  # restarts of a trial whose process (or, multi-worker, a worker) died, from its checkpoint

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.max_concurrent < 1 or self.milestones < 1:
            raise ValueError("--num-samples, --max-concurrent and --milestones must be >= 1")
        if self.max_failures < 0:
            raise ValueError(f"--max-failures {self.max_failures} is not allowed: an integer >= 0")
        if self.workers_per_trial < 1:
            raise ValueError("--workers-per-trial must be >= 1")
        if self.workers_per_trial > 1 and self.scheduler == "pbt":
            # PBT exploits Tune checkpoints; a multi-worker trial's checkpoints stay in its Train run.
            raise ValueError("--scheduler pbt trains in-process: use --workers-per-trial 1 with it")
        if self.scheduler == "pbt" and self.search == "optuna":
            raise ValueError("--scheduler pbt chooses its own configurations; use --search random with it")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SearchOptions:
        return cls(**values)


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of a search is told, beside the values Tune chose for it."""

    name: str  # the search's
    base: ExperimentConfig  # the config the chosen values apply to
    eval_samples: int
    stop_on_collapse: bool  # False under PBT: a collapsing trial is exploited, not stopped
    cache_dir: str  # the feature classifiers' cache
    storage_uri: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None  # the search's MLflow run; each trial logs into a child of it
    tracking_wait_s: float
    hooks: tuple[HookFactory, ...] = ()  # more hooks in every trial (see train.trainer.run_trainer)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "base": self.base.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialSpec:
        return cls(**{**values, "base": from_dict(values["base"]), "hooks": tuple(values.get("hooks", ()))})


@dataclass
class SearchResult:
    name: str
    folder: Path
    best_config: ExperimentConfig
    best_objective: float
    trials: list[dict[str, Any]]
    parent_run_id: str | None
    best_params: dict[str, Any] = field(default_factory=dict)  # the searched keys' best values
    best_stop_reason: str = ""  # set when every trial was stopped (collapse, error), the best one's reason


class SearchInterrupted(Exception):
    """Ctrl-C or SIGTERM ended the search before every trial had finished; Tune saved its state."""

    transient = False  # asked for: a flow's retry would undo it (runtime/faults.py)
    requested_stop = True  # its message says all there is (runtime/logs.py)

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # as a shell reports a command the signal ended
