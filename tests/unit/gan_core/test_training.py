import copy
import json
from pathlib import Path

import pytest
import torch

from gan_core.config import ConfigError, load_config
from gan_core.data import load_dataset
from gan_core.outputs import FolderCheckpointer, checkpoint_steps, latest_checkpoint
from gan_core.training import (
    Hook,
    Meter,
    NonFiniteLossError,
    fit,
    generator_from_checkpoint,
    load_checkpoint,
    start_training,
)
from gan_core.training.loop import train_step

RING = ["data.name=ring", "data.n_train=2000", "model.g_width=32", "model.d_width=32", "train.batch_size=64"]


def _config(*extra: str):
    return load_config(overrides=[*RING, "train.steps=20", "train.log_every=5", "train.checkpoint_every=10", *extra])


class Recorder(Hook):
    def __init__(self):
        self.metrics, self.checkpoints, self.samples = [], [], []

    def on_metrics(self, step, metrics, state):
        self.metrics.append((step, metrics))

    def on_checkpoint(self, step, checkpoint, state):
        self.checkpoints.append((step, checkpoint))

    def on_samples(self, step, samples, state):
        self.samples.append(step)


def _weights(state) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in state.generator.parameters()])


def test_hook_receives_metrics_checkpoints_and_samples():
    recorder = Recorder()
    config = _config("train.sample_every=10")
    fit(config, load_dataset("ring", n_train=2000), [recorder])
    assert [s for s, _ in recorder.metrics] == [5, 10, 15, 20]
    assert [s for s, _ in recorder.checkpoints] == [10, 20]
    assert recorder.samples == [10, 20]
    metrics = recorder.metrics[-1][1]
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "samples_per_s"):
        assert key in metrics and metrics[key] == metrics[key]


def test_seeded_runs_are_reproducible_on_cpu():
    data = load_dataset("ring", n_train=2000)
    a, b = fit(_config(), data), fit(_config(), data)
    assert torch.equal(_weights(a), _weights(b))
    assert not torch.equal(_weights(a), _weights(fit(_config("train.seed=1"), data)))


def test_resume_continues_exactly_where_it_stopped():
    data = load_dataset("ring", n_train=2000)
    straight = fit(_config(), data)
    recorder = Recorder()
    fit(_config("train.steps=10"), data, [recorder])
    step, checkpoint = recorder.checkpoints[-1]
    assert step == 10
    resumed = fit(_config(), data, resume_from=checkpoint)
    assert resumed.step == 20
    assert torch.equal(_weights(straight), _weights(resumed))
    assert torch.equal(
        torch.cat([p.flatten() for p in straight.ema.model.parameters()]),
        torch.cat([p.flatten() for p in resumed.ema.model.parameters()]),
    )


def test_k_discriminator_steps_per_generator_step():
    state = fit(_config("train.d_steps=3", "train.steps=4"), load_dataset("ring", n_train=2000))
    d_steps = {float(s["step"]) for s in state.opt_d.state.values()}
    g_steps = {float(s["step"]) for s in state.opt_g.state.values()}
    assert d_steps == {12.0} and g_steps == {4.0}


def test_lazy_r1_applies_the_penalty_every_nth_update_n_times_as_strong_and_resumes():
    data = load_dataset("ring", n_train=2000)
    lazy = ("loss.r1_weight=0.5", "loss.r1_every=3", "train.d_steps=2")
    state, phases = start_training(_config(*lazy), data)
    weights = [phases.ctx.next_r1_weight() for _ in range(7)]
    assert weights == [1.5, 0.0, 0.0, 1.5, 0.0, 0.0, 1.5]
    # The penalty changes training, and a resumed run keeps its rhythm (step 5 = D update 10).
    straight = fit(_config(*lazy), data)
    assert not torch.equal(_weights(straight), _weights(fit(_config("loss.r1_weight=0", "train.d_steps=2"), data)))
    recorder = Recorder()
    fit(_config(*lazy, "train.steps=5"), data, [recorder])
    resumed = fit(_config(*lazy), data, resume_from=recorder.checkpoints[-1][1])
    assert torch.equal(_weights(straight), _weights(resumed))


def test_learning_rate_schedule_reaches_the_optimisers_and_resumes():
    data = load_dataset("ring", n_train=2000)
    schedule = ("optim.lr_schedule=linear-decay", "optim.decay_start=0.25")
    recorder = Recorder()
    recorder.on_checkpoint = lambda step, ckpt, state: recorder.checkpoints.append((step, copy.deepcopy(ckpt)))
    state = fit(_config(*schedule), data, [recorder])
    assert [g["lr"] for g in state.opt_g.param_groups] == pytest.approx([2e-4 / 15])  # update 20 of 20
    assert [g["lr"] for g in state.opt_d.param_groups] == pytest.approx([2e-4 / 15])
    step, checkpoint = recorder.checkpoints[0]  # mid-decay: a resumed run must take up the schedule there
    assert step == 10
    assert torch.equal(_weights(state), _weights(fit(_config(*schedule), data, resume_from=checkpoint)))


@pytest.mark.parametrize(
    "extra",
    [
        ["loss.name=minimax"],
        ["loss.name=wgan-gp", "train.d_steps=2"],
        ["loss.name=hinge", "loss.r1_weight=1.0"],
        ["loss.name=least-squares", "loss.label_smoothing=0.1", "loss.instance_noise=0.1"],
        ["model.pack=2"],
        ["train.ema_decay=0"],
        ["loss.top_k=0.5", "loss.top_k_anneal=0.25"],
        ["train.reuse_fakes=true", "train.d_steps=2"],
    ],
)
def test_every_loss_and_trick_trains(extra):
    recorder = Recorder()
    state = fit(_config(*extra), load_dataset("ring", n_train=2000), [recorder])
    assert state.step == 20
    assert all(v == v for _, m in recorder.metrics for v in m.values())


def test_conditional_acgan_on_digits_trains():
    model = ["model.name=dcgan", "model.conditioning=acgan", "model.g_width=8", "model.d_width=8"]
    train = ["train.steps=6", "train.batch_size=32", "train.log_every=3"]
    config = load_config(overrides=["data.name=digits", *model, *train])
    recorder = Recorder()
    fit(config, load_dataset("digits"), [recorder])
    assert "d_class_acc" in recorder.metrics[-1][1] and "g_aux_loss" in recorder.metrics[-1][1]


class Sabotage(Hook):
    """Poisons G after step 10 so the next report sees NaN."""

    def on_checkpoint(self, step, checkpoint, state):
        with torch.no_grad():
            next(state.generator.parameters()).fill_(float("nan"))


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path: Path):
    saver = FolderCheckpointer(tmp_path, keep=3)
    with pytest.raises(NonFiniteLossError, match="non-finite training metrics by step 15"):
        fit(_config(), load_dataset("ring", n_train=2000), [saver, Sabotage()])
    assert checkpoint_steps(tmp_path) == [10]
    good = latest_checkpoint(tmp_path)
    assert all(torch.isfinite(t).all() for t in good["generator"].values())


def test_checkpoints_load_safely_and_keep_the_last_k(tmp_path: Path):
    config = _config("train.steps=40", "train.keep_checkpoints=2")
    fit(config, load_dataset("ring", n_train=2000), [FolderCheckpointer(tmp_path, keep=2)])
    assert checkpoint_steps(tmp_path) == [30, 40]
    checkpoint = load_checkpoint(tmp_path / "step-000040.pt")  # weights_only=True inside
    assert checkpoint["step"] == 40 and checkpoint["config"]["train"]["steps"] == 40
    for key in ("generator", "discriminator", "ema_generator", "opt_g", "opt_d", "rng", "batches"):
        assert checkpoint[key] is not None
    generator = generator_from_checkpoint(checkpoint)
    assert generator(torch.randn(3, generator.latent_dim)).shape == (3, 2)


def test_batch_larger_than_data_is_refused():
    with pytest.raises(ValueError, match="exceeds the 200 training samples"):
        fit(
            load_config(overrides=["data.n_train=200", "train.batch_size=256", "train.steps=1"]),
            load_dataset("ring", n_train=200),
        )


def _inputs_seen_by_d_per_step(*extra: str, steps: int = 3) -> tuple[list[list[torch.Tensor]], int]:
    """What D was called on in each of `steps` eager steps, and how many times G ran forward."""
    config = _config("train.ema_decay=0.9", *extra)
    state, phases = start_training(config, load_dataset("ring", n_train=2000))
    seen, g_forwards = [], []
    state.discriminator.register_forward_hook(lambda m, args, out: seen[-1].append(args[0].detach().clone()))
    state.generator.register_forward_hook(lambda m, args, out: g_forwards.append(1))
    for _ in range(steps):
        seen.append([])
        train_step(state, phases, Meter(), report=False)
    return seen, len(g_forwards)


def test_reuse_fakes_judges_the_discriminator_updates_fakes_again_and_saves_a_forward_of_g():
    seen, g_forwards = _inputs_seen_by_d_per_step("train.reuse_fakes=true")
    assert g_forwards == 3
    for d_input, g_input in seen:  # D's update scores cat(real, fake); G's update scores the fakes
        assert torch.equal(g_input, d_input.chunk(2)[1])

    seen, g_forwards = _inputs_seen_by_d_per_step()  # the default: G's update draws new fakes
    assert g_forwards == 6
    assert not any(torch.equal(g_input, d_input.chunk(2)[1]) for d_input, g_input in seen)


def test_top_k_generator_loss_averages_only_the_fakes_d_scores_highest():
    from gan_core.losses import LOSSES
    from gan_core.training.step import StepContext, generator_loss

    loss = LOSSES.get("nonsaturating")()
    ctx = StepContext(loss, load_config().loss, torch.Generator(), torch.autocast("cpu", enabled=False), 0)
    logits = torch.tensor([3.0, -2.0, 0.5, -4.0, 1.0, 2.0, -1.0, 0.0])
    assert generator_loss(logits, ctx) == loss.generator(logits)
    ctx.top_k = 0.25
    assert generator_loss(logits, ctx) == loss.generator(torch.tensor([3.0, 2.0]))
    ctx.top_k = 0.01  # never fewer than one fake
    assert generator_loss(logits, ctx) == loss.generator(torch.tensor([3.0]))


def test_top_k_fraction_anneals_from_all_fakes_to_its_floor():
    config = load_config(overrides=["loss.top_k=0.5", "loss.top_k_anneal=0.5"]).loss
    assert [config.top_k_fraction(step, 100) for step in (1, 26, 51, 100)] == [1.0, 0.75, 0.5, 0.5]
    assert load_config().loss.top_k_fraction(50, 100) == 1.0
    with pytest.raises(ConfigError, match="loss.top_k=0.0 is not allowed"):
        load_config(overrides=["loss.top_k=0"])


def _check_on_rank(rank: int, world_size: int, port: int, folder: str) -> None:
    """One rank of a gloo group: only rank 1's metrics are non-finite; records what each rank saw."""
    import torch.distributed as dist

    from gan_core.training.agreement import RankAgreement

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    metrics = {"d_loss": 0.7, "g_loss": float("nan") if rank == 1 else 1.1}
    try:
        RankAgreement(world_size, torch.device("cpu"), log_every=10).at_report(metrics, 40, False, 0.01)
        outcome = "went on"
    except NonFiniteLossError as error:
        outcome = str(error)
    finally:
        dist.destroy_process_group()
    Path(folder, f"rank{rank}.txt").write_text(outcome)


def test_every_rank_stops_at_the_step_any_rank_diverges(tmp_path: Path):
    """A rank stopping alone would leave the others blocked in DDP's next all-reduce."""
    import torch.multiprocessing as mp

    from tests.integration.services import free_port

    mp.spawn(_check_on_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        outcome = (tmp_path / f"rank{rank}.txt").read_text()
        assert outcome.startswith("non-finite training metrics by step 40: rank 1: {'g_loss': nan};"), (rank, outcome)


def _pace_on_rank(rank: int, world_size: int, port: int, folder: str) -> None:
    """One rank of a gloo group reporting its own pace; records the stop-check interval it derives."""
    import torch.distributed as dist

    from gan_core.training.agreement import RankAgreement

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    ranks = RankAgreement(world_size, torch.device("cpu"), log_every=10)
    seen = {"before the first report": ranks.check_every}
    try:
        for label, paces in (("0.1 s and 0.25 s", (0.1, 0.25)), ("5 s", (5.0, 0.2)), ("0.1 ms", (1e-4, 1e-4))):
            ranks.at_report({"d_loss": 0.7}, 10, False, paces[rank])
            seen[label] = ranks.check_every
        seen["due at steps 10-13"] = [ranks.stop_check_due(step) for step in range(10, 14)]
        seen["stop asked by rank 1 only"] = ranks.any_rank_asked_to_stop(rank == 1)
    finally:
        dist.destroy_process_group()
    Path(folder, f"rank{rank}.json").write_text(json.dumps(seen))


def test_ranks_check_for_a_stop_about_once_a_second_at_the_slowest_rank_s_pace(tmp_path: Path):
    """All ranks must take part in the same all-reduces: each derives the same interval from the
    slowest pace the report shares, between one step and a report interval."""
    import torch.multiprocessing as mp

    from tests.integration.services import free_port

    mp.spawn(_pace_on_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    expected = {
        "before the first report": 1,
        "0.1 s and 0.25 s": 4,  # 1 s at the slower rank's 0.25 s per step
        "5 s": 1,
        "0.1 ms": 10,  # never more than log_every
        "due at steps 10-13": [True, False, False, False],
        "stop asked by rank 1 only": True,
    }
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == expected, rank


def test_progress_lines_give_the_rate_since_the_previous_line(monkeypatch):
    """The first steps' one-off costs made the rate an average since the start (29.6 it/s beside
    23k samples/s at batch 256) and the ETA several times too long."""
    from types import SimpleNamespace

    import gan_core.outputs.progress as progress

    clock = iter([0.0, 10.0, 11.0])  # start; 100 slow first steps; 100 more in one second
    monkeypatch.setattr(progress, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    train = SimpleNamespace(steps=1200, batch_size=64, d_steps=2)
    state = SimpleNamespace(step=0, device="cpu", config=SimpleNamespace(train=train))
    lines: list[str] = []
    printer = progress.ProgressPrinter(lines.append)
    printer.on_start(state)
    printer.on_metrics(100, {"d_loss": 1.0}, state)
    printer.on_metrics(200, {"d_loss": 1.0}, state)
    assert "| 10.0 it/s 1280 samples/s" in lines[1] and "| 100.0 it/s 12800 samples/s" in lines[2], lines
    assert "elapsed 0m11s ETA 0m10s" in lines[2], lines[2]  # 1000 steps to go at 100 it/s
