"""`ganpipe train` on Ray: hold the run's lease, check what can be checked before Ray starts,
open (or resume) the MLflow run, train on Ray Train, then publish the generator.

    train_distributed
      ├─ storage.check, lease of the run           (storage/)
      ├─ dataset, config checks, MLflow run         (storage/, tracking/)
      ├─ ensure_room_for_workers                    (scaling.py, cluster/)
      ├─ run_trainer ─▶ train_worker ─▶ gan_core.fit (trainer.py, worker.py)
      └─ publish_generator                          (publish.py, registry/)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gan_core.config import ConfigError, ExperimentConfig
from gan_core.data import Dataset
from gan_core.data.prepared import dataset_version
from gan_core.metrics import Evaluator, coverage_fall
from gan_core.training import TrainingStopped, generator_from_checkpoint
from gan_core.training.state import check_trainable
from pipelines.settings import Settings
from pipelines.storage.datasets import load_for
from pipelines.storage.lease import holding
from pipelines.storage.location import Storage
from pipelines.tracking import runs
from pipelines.tracking.server import without_credentials
from pipelines.train.options import HookFactory
from pipelines.train.publish import TrainedRun, publish_generator, resend_backlog
from pipelines.train.scaling import Scaling, ensure_room_for_workers
from pipelines.train.trainer import load_result_checkpoint, run_trainer, steps_trained, worker_options


@dataclass(frozen=True)
class TrainResult:
    run_name: str
    run_id: str
    resumed: bool
    steps: int
    metrics: dict[str, dict[str, float]]
    checkpoint_uri: str
    model_uri: str
    registered_version: str | None = None
    tags: dict[str, str] | None = None  # lineage: dataset version, config hash, code version
    late_collapse: str | None = None  # how coverage fell after its best, when it fell that far

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainResult:
        return cls(**values)


def train_distributed(
    config: ExperimentConfig,
    run_name: str,
    scaling: Scaling,
    settings: Settings | None = None,
    log: Callable[[str], None] = print,
    register_as: str | None = None,
    bootstrap: int = 100,
    hooks: Sequence[HookFactory] = (),
) -> TrainResult:
    """Train `config` as run `run_name` on Ray Train (resuming it if it exists), evaluate the
    generator with `bootstrap` resamples, and register it as a version of `register_as` if given.
    `hooks` add hooks to every worker (see `run_trainer`)."""
    settings = settings or Settings.from_env()
    storage = Storage.from_uri(settings.storage_uri)
    storage.check(log)  # a missing bucket or bad credentials fail here; a silent endpoint is waited for
    checkpoints = storage.child("checkpoints")

    with holding(checkpoints.child(run_name), f"run {run_name}", log):  # no second training of this run meanwhile
        dataset = load_for(config)
        check_trainable(config, dataset, scaling.workers, trains_here=False)  # before Ray and MLflow
        client = runs.client_for(settings, log)  # waits for the MLflow server if it does not answer
        runs.check_same_config(client, settings, run_name, config.flat())  # a resume must not change it
        check_steps_not_fewer(config, checkpoints, run_name)
        scaling = ensure_room_for_workers(scaling, settings, log)  # before an MLflow run is opened for nothing
        run_id, resumed, tags = open_run(client, settings, config, run_name, dataset, log)

        log(f"training {run_name} on {scaling.workers} Ray worker(s); checkpoints in {checkpoints.uri}/{run_name}")
        with ending_run(client, run_id, f"{checkpoints.uri}/{run_name}", log):
            options = worker_options(
                config, run_name, checkpoints.uri, run_id=run_id, tracking_uri=settings.tracking_uri,
                tracking_wait_s=settings.tracking_wait_s, graceful_stop=True,
                classifier_cache=settings.classifier_cache,
            )  # fmt: skip
            checkpoint = load_result_checkpoint(run_trainer(options, scaling, hooks=hooks))
            client = runs.client_for(settings, log)  # the server may have gone away while training ran
            resend_backlog(client, run_id, checkpoint, log)
            collapse = late_collapse(client, run_id, log)
            evaluator = Evaluator(dataset, config.eval, cache_dir=settings.classifier_cache, log=log)
            trained = TrainedRun(run_id, run_name, config, tags, int(checkpoint["step"]))
            generator = generator_from_checkpoint(checkpoint)
            published = publish_generator(client, settings, trained, generator, evaluator, register_as, bootstrap, log)
        return TrainResult(
            run_name, run_id, resumed, trained.step, published.report, f"{checkpoints.uri}/{run_name}",
            published.model_uri, published.version, tags, collapse,
        )  # fmt: skip


def late_collapse(client: Any, run_id: str, log: Callable[[str], None]) -> str | None:
    """The collapse watch's coverage curve, read back from the run (every attempt of it): modes or
    classes reached and then lost are said, and tagged on the run as `collapse.late`. The
    evaluation after training sees only the generator the run ended with, not what it lost."""
    fall = coverage_fall([(m.step, m.value) for m in client.get_metric_history(run_id, "coverage")])
    if fall is None:
        return None
    said = fall.describe()
    client.set_tag(run_id, "collapse.late", said)
    log(f"mode collapse late in training: {said}")
    return said


def check_steps_not_fewer(config: ExperimentConfig, checkpoints: Storage, run_name: str) -> None:
    """Refuse a train.steps below what the run has trained: Ray would resume its newest checkpoint,
    train nothing, and log and register that generator once more as if it were new."""
    trained = steps_trained(checkpoints, run_name)
    if trained is not None and trained > config.train.steps:
        raise ConfigError(
            f"train.steps={config.train.steps} is not allowed: run {run_name} has trained {trained} steps already "
            f"(checkpoints in {checkpoints.uri}/{run_name}); ask for at least as many to continue it, "
            "or use another --name"
        )


def open_run(
    client: Any, settings: Settings, config: ExperimentConfig, run_name: str, dataset: Dataset, log: Callable
) -> tuple[str, bool, dict[str, str]]:
    """The run's MLflow run, found again or new, tagged with its lineage: (id, resumed, tags)."""
    tags = {
        "dataset.name": dataset.name,
        "dataset.version": dataset_version(dataset),
        "config.hash": config.hash(),
        "code.version": runs.code_version(),
    }
    run_id, resumed = runs.find_or_create_run(client, settings, run_name, config.flat(), tags)
    if not resumed:
        runs.log_dataset_input(client, run_id, dataset, tags["dataset.version"], config.data.root)
    log(f"MLflow run {run_id} ({'resumed' if resumed else 'new'}) at {without_credentials(settings.tracking_uri)}")
    return run_id, resumed, tags


@contextlib.contextmanager
def ending_run(client: Any, run_id: str, checkpoints: str, log: Callable[[str], None]) -> Iterator[None]:
    """The MLflow run ends FINISHED when the block does, KILLED on a stop (Ctrl-C or SIGTERM:
    during training, or after it, when Ray's SIGTERM handler in the driver calls sys.exit) and
    FAILED on any other error."""
    try:
        yield
    except (TrainingStopped, KeyboardInterrupt, SystemExit):
        runs.mark_ended(client, run_id, "KILLED", log)
        log(f"checkpoints: {checkpoints}; run the same command to resume")
        raise
    except Exception:
        runs.mark_ended(client, run_id, "FAILED", log)
        raise
    client.set_terminated(run_id, status="FINISHED")
