"""Train one GAN in this process with gan_core alone, leaving everything in one folder.

    out/
      config.yaml         the resolved config
      checkpoints/        step-N.pt, the newest `train.keep_checkpoints` kept
      metrics.jsonl       training metrics every `train.log_every` steps
      metrics.json        the final evaluation, each metric beside its real-vs-real value
      samples.png         final samples (grid or scatter over the true modes)
      training.gif        the same latent batch through training
      curves.png          losses, D outputs, gradient norms, coverage

Running it again on the same folder resumes from the newest checkpoint. Ctrl-C or SIGTERM stops
training after the step in progress, with a checkpoint of that step, so nothing trained is lost.
A second training of the same folder while one runs is refused (`.training.lock`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gan_core.config import ConfigError, ExperimentConfig, absolute_root, from_dict
from gan_core.data import load_dataset
from gan_core.files import UnreadableFile
from gan_core.metrics import CollapseWatch, Evaluator, versus_real, watch_interval
from gan_core.outputs import FolderCheckpointer, ProgressPrinter, RunRecorder, latest_checkpoint, sample_picture
from gan_core.outputs.progress import format_duration
from gan_core.outputs.run_lock import training_lock
from gan_core.training import Hook, StopRequest, TrainingStopped, fit, stop_on_signals
from gan_core.training.state import check_trainable


@dataclass
class LocalRunResult:
    folder: Path
    metrics: dict[str, dict[str, float]]
    steps: int
    seconds: float
    collapse_events: list[dict[str, Any]]


def train_local(
    config: ExperimentConfig,
    folder: str | Path,
    fresh: bool = False,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    extra_hooks: list[Hook] | None = None,
) -> LocalRunResult:
    folder = Path(folder)
    with training_lock(folder):  # a second training of this folder meanwhile is refused
        return _train_in(folder, config, fresh, cache_dir, log, extra_hooks)


def _train_in(
    folder: Path,
    config: ExperimentConfig,
    fresh: bool,
    cache_dir: str | Path | None,
    log: Callable[[str], None],
    extra_hooks: list[Hook] | None,
) -> LocalRunResult:
    checkpoints = folder / "checkpoints"
    try:
        resume = None if fresh else latest_checkpoint(checkpoints)
    except UnreadableFile as error:
        raise UnreadableFile(f"{error}: delete it to resume from the one before, or pass --fresh") from None
    if resume is not None:
        _check_same_run(resume, config, folder)
    dataset = load_dataset(config.data.name, config.data.root, config.data.n_train, config.data.seed)
    log(f"dataset {dataset.summary()}")
    check_trainable(config, dataset)  # before the classifier trains, and before --fresh deletes anything

    if resume is not None:
        log(f"resuming {folder} from step {resume['step']}")
    elif fresh and checkpoints.is_dir():
        for old in checkpoints.glob("step-*.pt"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    evaluator = Evaluator(dataset, config.eval, cache_dir=str(cache_dir or folder / "classifier"), log=log)
    if evaluator.classifier_accuracy is not None:
        log(f"feature classifier test accuracy {evaluator.classifier_accuracy:.4f}")
    watch = CollapseWatch(
        evaluator,
        every=watch_interval(config.train),
        threshold=config.eval.collapse_threshold,
        on_collapse=lambda e: log(f"mode-collapse warning at step {e.step}: {e.reason}"),
    )
    checkpointer = FolderCheckpointer(checkpoints, config.train.keep_checkpoints)
    hooks = [watch, ProgressPrinter(log), checkpointer, RunRecorder(folder, dataset)]
    started = time.perf_counter()
    stop = StopRequest()
    try:
        with stop_on_signals(stop, "stopping after this step, with a checkpoint (Ctrl-C again quits without one)"):
            state = fit(config, dataset, hooks + list(extra_hooks or []), resume_from=resume, stop=stop)
    except TrainingStopped:
        log(f"checkpoint of the step it stopped at: {checkpointer.last_path}; run the same command to resume")
        raise
    seconds = time.perf_counter() - started

    log("evaluating the EMA generator" if state.ema else "evaluating the generator")
    report = evaluator.evaluate(state.sampler)
    title = f"{config.data.name}, step {state.step}"
    sample_picture(state.sampler, dataset, config.eval.seed, title).save(folder / "samples.png")
    events = [vars(e) for e in watch.events]
    summary = {
        "dataset": dataset.summary(),
        "steps": state.step,
        "train_seconds": round(seconds, 2),
        "config_hash": config.hash(),
        "classifier_accuracy": evaluator.classifier_accuracy,
        "metrics": report,
        "coverage_history": watch.history,
        "collapse_events": events,
    }
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2))
    log(f"trained {state.step} steps in {format_duration(seconds)}; outputs in {folder}")
    for name, pair in report.items():
        log(f"  {name:>20}: {pair['value']:.4f}   ({versus_real(pair)})")
    return LocalRunResult(folder, report, state.step, seconds, events)


def _check_same_run(checkpoint: dict[str, Any], config: ExperimentConfig, folder: Path) -> None:
    """Resuming is only sound for the same experiment; only the step budget may grow."""
    before, now = from_dict(checkpoint["config"]).flat(), config.flat()
    before["data.root"] = absolute_root(before["data.root"])  # runs from before roots were made absolute
    changed = sorted(k for k in now if k != "train.steps" and before.get(k) != now[k])
    if changed:
        detail = ", ".join(f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in changed)
        raise ConfigError(
            f"{folder} holds a run with a different config ({detail}); pass --fresh or another output folder"
        )
    if checkpoint["step"] > config.train.steps:
        raise ConfigError(
            f"train.steps={config.train.steps} is not allowed: {folder} has trained {checkpoint['step']} steps "
            f"already; ask for at least as many to continue it, or pass --fresh to start over"
        )
