"""Rank 0's checkpoints go to Ray for a background upload, at most one in flight (ray.train faked)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gan_core.training import load_checkpoint
from gan_core.training.state import CHECKPOINT_FORMAT
from pipelines.train.reporter import CHECKPOINT_FILE, RayReporter


@pytest.fixture()
def ray_calls(monkeypatch):
    """What the reporter asks of ray.train, in order; each checkpoint folder is read back and
    deleted at once, as Ray's upload thread does once it has uploaded it."""
    import ray.train

    calls: list[tuple] = []

    def report(metrics, checkpoint=None, checkpoint_upload_mode=ray.train.CheckpointUploadMode.SYNC):
        held, folder = None, None
        if checkpoint is not None:
            held, folder = load_checkpoint(Path(checkpoint.path) / CHECKPOINT_FILE), Path(checkpoint.path).name
            shutil.rmtree(checkpoint.path)
        calls.append(("report", metrics["step"], checkpoint_upload_mode, held, folder))

    def wait(consistency_mode=ray.train.CheckpointConsistencyMode.VALIDATED, timeout_s=None):
        calls.append(("wait", consistency_mode))
        return []

    monkeypatch.setattr(ray.train, "report", report)
    monkeypatch.setattr(ray.train, "get_all_reported_checkpoints", wait)
    return calls


def reporter(rank: int) -> RayReporter:
    return RayReporter(rank=rank, world_size=2, run_id=None, tracking_uri=None, check_sync=False)


def test_rank_0_uploads_in_the_background_and_waits_only_for_the_previous_upload(ray_calls):
    import ray.train

    rank0 = reporter(0)
    for step in (100, 200, 300):
        rank0.on_checkpoint(step, _checkpoint(step), state=None)

    async_mode, committed = ray.train.CheckpointUploadMode.ASYNC, ray.train.CheckpointConsistencyMode.COMMITTED
    assert [call[:3] if call[0] == "report" else call for call in ray_calls] == [
        ("report", 100, async_mode),  # the first checkpoint has nothing to wait for
        ("wait", committed),
        ("report", 200, async_mode),
        ("wait", committed),
        ("report", 300, async_mode),
    ]
    assert [call[3]["step"] for call in ray_calls if call[0] == "report"] == [100, 200, 300]


def test_other_ranks_report_without_a_checkpoint_and_never_wait(ray_calls):
    rank1 = reporter(1)
    for step in (100, 200):
        rank1.on_checkpoint(step, _checkpoint(step), state=None)
    assert [(call[0], call[1], call[3]) for call in ray_calls] == [("report", 100, None), ("report", 200, None)]


def test_copies_left_by_workers_that_died_are_removed_and_none_of_a_live_one(ray_calls, monkeypatch, tmp_path):
    """Ray deletes a copy once uploaded; a worker that died first left its copy behind."""
    import os
    import subprocess
    import sys
    import tempfile

    from pipelines.train.reporter import remove_orphaned_copies

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    orphan = tmp_path / f"ganpipe-checkpoint-{ended.pid}-abc123"
    live = tmp_path / f"ganpipe-checkpoint-{os.getppid()}-def456"  # this test's parent is running
    unrelated = tmp_path / "ganpipe-checkpoint-old_format"
    for folder in (orphan, live, unrelated):
        folder.mkdir()
        (folder / CHECKPOINT_FILE).write_bytes(b"weights")
    remove_orphaned_copies()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unrelated.name])

    # Rank 0 names its copies after its process, for a later sweep to ask after.
    reporter(0).on_checkpoint(100, _checkpoint(100), state=None)
    [copy] = [call[4] for call in ray_calls if call[0] == "report"]
    assert copy.startswith(f"ganpipe-checkpoint-{os.getpid()}-")


def _checkpoint(step: int) -> dict:
    """The keys every reader of a checkpoint checks for; the weights do not matter here."""
    return {"format": CHECKPOINT_FORMAT, "step": step, "config": {}, "generator": {}, "discriminator": {}, "extra": {}}
