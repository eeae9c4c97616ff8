"""Stopping a run early keeps its progress: a checkpoint at the step it stopped, resumable exactly."""

import os
import signal
from pathlib import Path

import pytest
import torch

from gan_core.config import load_config
from gan_core.data import load_dataset
from gan_core.training import Hook, StopRequest, TrainingStopped, fit, stop_on_signals

RING = ["data.name=ring", "data.n_train=2000", "model.g_width=32", "model.d_width=32", "train.batch_size=64"]


def _config(*extra: str):
    return load_config(overrides=[*RING, "train.steps=40", "train.log_every=10", "train.checkpoint_every=20", *extra])


class StopAt(Hook):
    """Asks `stop` to stop when the metrics of `step` arrive; records the checkpoints written."""

    def __init__(self, stop: StopRequest, step: int) -> None:
        self.stop, self.step = stop, step
        self.checkpoints: list[tuple[int, dict]] = []

    def on_metrics(self, step, metrics, state):
        if step == self.step:
            self.stop.request("asked by the test")

    def on_checkpoint(self, step, checkpoint, state):
        self.checkpoints.append((step, checkpoint))


def _weights(state) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in state.generator.parameters()])


def test_a_stopped_run_checkpoints_the_step_it_was_in_and_resumes_exactly():
    data = load_dataset("ring", n_train=2000)
    straight = fit(_config(), data)
    stop = StopRequest()
    hook = StopAt(stop, step=30)
    with pytest.raises(TrainingStopped) as stopped:
        fit(_config(), data, [hook], stop=stop)
    # One process stops at the step after the request, not at the next checkpoint (40).
    assert stopped.value.step == 31
    assert str(stopped.value) == "stopped at step 31 (asked by the test)"
    assert [step for step, _ in hook.checkpoints] == [20, 31]
    resumed = fit(_config(), data, resume_from=hook.checkpoints[-1][1])
    assert resumed.step == 40
    assert torch.equal(_weights(straight), _weights(resumed))


def test_without_a_request_training_runs_to_the_end():
    hook = StopAt(StopRequest(), step=-1)
    state = fit(_config(), load_dataset("ring", n_train=2000), [hook], stop=hook.stop)
    assert state.step == 40 and [step for step, _ in hook.checkpoints] == [20, 40]


def test_the_first_signal_asks_to_stop_and_a_second_ctrl_c_quits(capfd):
    before = signal.getsignal(signal.SIGINT)
    stop = StopRequest()
    with stop_on_signals(stop, "stopping after this step"):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.reason == "SIGTERM" and stop.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # a repeated SIGTERM changes nothing
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
    assert capfd.readouterr().err == "SIGTERM: stopping after this step\n"
    assert stop.stopped_at(12).exit_code == 128 + signal.SIGTERM


def _stop_on_rank(rank: int, world_size: int, port: int, folder: str) -> None:
    """One rank of a gloo group training under DDP; only rank 1 is asked to stop."""
    import torch.distributed as dist

    from gan_core.training import agreement
    from gan_core.training.distributed import ddp

    agreement.STOP_CHECK_S = 0.0  # a check after every step, whatever this machine's pace
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    stop = StopRequest()
    hook = StopAt(stop, step=10 if rank == 1 else -1)
    config = _config("train.log_every=5")
    device = torch.device("cpu")
    try:
        data = load_dataset("ring", n_train=2000)
        fit(
            config,
            data,
            [hook],
            rank=rank,
            world_size=world_size,
            wrap=lambda m: ddp(m, device),
            device=device,
            stop=stop,
        )
        outcome = "went on"
    except TrainingStopped as stopped:
        outcome = f"{stopped} checkpoints {[step for step, _ in hook.checkpoints]}"
    finally:
        dist.destroy_process_group()
    Path(folder, f"rank{rank}.txt").write_text(outcome)


def test_every_rank_stops_at_the_next_check_when_any_rank_is_asked(tmp_path: Path):
    """Ranks agree at their stop checks, here after every step; reports come every 5 steps. One rank
    stopping alone would block the others. (It waited for the next report step: 15.)"""
    import torch.multiprocessing as mp

    from tests.integration.services import free_port

    mp.spawn(_stop_on_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    assert (
        tmp_path / "rank0.txt"
    ).read_text() == "stopped at step 11 (another rank was asked to stop) checkpoints [11]"
    assert (tmp_path / "rank1.txt").read_text() == "stopped at step 11 (asked by the test) checkpoints [11]"
