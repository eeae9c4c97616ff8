import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import pipelines.flows.pipeline  # noqa: F401 - see below
from gan_core.config import load_config, preset_path
from pipelines.cli.main import main

# Prefect binds its log handlers to the sys.stderr of its first import. Imported first inside a
# test that captures output (capsys), they wrote to that test's stream once it was closed, and
# every later flow failed ("I/O operation on closed file"). Imported here, at collection, they
# bind to the session's stream.


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch) -> None:
    """Caches (the digits classifier) and runs without --out-root go here, not into the checkout."""
    monkeypatch.setenv("GANPIPE_HOME", str(tmp_path / "home"))


def test_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("train", "evaluate", "config", "list", "bench", "--install-completion", "--show-completion"):
        assert command in out


def test_help_lists_the_pipeline_first(capsys):
    """`ganpipe --help` groups its commands in panels, the whole pipeline before its steps."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    first_words = [line.strip("│ ").split(" ")[0] for line in out.splitlines()]  # of each row in the panels
    assert "Pipeline" in out and first_words.index("pipeline") < first_words.index("train")
    assert first_words.index("train") < first_words.index("evaluate") < first_words.index("bench")


def test_bare_ganpipe_shows_the_help(capsys):
    assert main([]) == 2  # as a usage error, since no command was given, but with the help, not an error line
    captured = capsys.readouterr()
    assert "Usage: ganpipe [OPTIONS] COMMAND" in captured.out + captured.err
    assert "train" in captured.out + captured.err and "error" not in captured.err


def test_version_prints_the_package_version(capsys):
    import gan_core

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"ganpipe {gan_core.__version__}\n"


def test_subcommand_help_shows_defaults(capsys):
    assert main(["train", "--help"]) == 0
    assert "[default: 2]" in capsys.readouterr().out  # --workers


@pytest.mark.parametrize(
    "what,expect",
    [
        ("models", "dcgan"),
        ("losses", "wgan-gp"),
        ("datasets", "stacked-digits"),
        ("metrics", "prdc"),
        ("presets", "ring"),
    ],
)
def test_list_registries(capsys, what, expect):
    assert main(["list", what]) == 0
    assert expect in capsys.readouterr().out


def test_bad_override_is_a_clear_error(capsys):
    assert main(["config", "--set", "optim.lr_g=-3"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr_g=-3.0 is not allowed: a number in (0, 1)" in err


def test_config_prints_resolved_yaml(capsys):
    assert main(["config", "--preset", "ring", "--set", "train.steps=7"]) == 0
    assert "steps: 7" in capsys.readouterr().out


def test_train_local_writes_outputs_and_resumes(tmp_path: Path):
    args = ["train", "--local", "--preset", "ring", "--out-root", str(tmp_path), "--name", "r",
            "--set", "train.steps=40", "--set", "train.log_every=20", "--set", "train.checkpoint_every=20",
            "--set", "train.sample_every=20", "--set", "data.n_train=2000"]  # fmt: skip
    assert main(args) == 0
    folder = tmp_path / "r"
    for name in ("config.yaml", "metrics.json", "metrics.jsonl", "samples.png", "training.gif", "curves.png"):
        assert (folder / name).is_file(), name
    report = json.loads((folder / "metrics.json").read_text())
    assert report["steps"] == 40 and "modes" in report["metrics"]
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["step-000020.pt", "step-000040.pt"]
    # Same name, more steps: resumes from step 40 instead of starting over.
    more = [a if a != "train.steps=40" else "train.steps=60" for a in args]
    assert main(more) == 0
    assert json.loads((folder / "metrics.json").read_text())["steps"] == 60
    steps = [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert steps == [20, 40, 60]


def test_ctrl_c_stops_local_training_with_a_checkpoint_and_the_same_command_resumes(tmp_path: Path, capsys):
    args = ["train", "--local", "--preset", "ring", "--out-root", str(tmp_path), "--name", "r",
            "--set", "train.steps=1000000", "--set", "train.log_every=50", "--set", "train.checkpoint_every=100000",
            "--set", "train.sample_every=100000", "--set", "data.n_train=2000"]  # fmt: skip
    command = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args], stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    seen = []
    for line in command.stderr:
        seen.append(line)
        if line.startswith("step 100/"):
            command.send_signal(signal.SIGINT)
            break
    seen += command.communicate(timeout=120)[1].splitlines(keepends=True)
    err = "".join(seen)
    assert command.returncode == 130, err
    assert "SIGINT: stopping after this step, with a checkpoint" in err and "Traceback" not in err
    stopped_at = int(re.search(r"ganpipe train: stopped at step (\d+) \(SIGINT\)", err).group(1))
    assert stopped_at > 100
    checkpoints = tmp_path / "r" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == [f"step-{stopped_at:06d}.pt"]
    assert f"checkpoint of the step it stopped at: {checkpoints}/step-{stopped_at:06d}.pt" in err

    # The same command (here with a step budget it can reach) takes up where it stopped.
    more = [a if a != "train.steps=1000000" else f"train.steps={stopped_at + 20}" for a in args]
    assert main(more) == 0
    assert f"resuming {tmp_path / 'r'} from step {stopped_at}" in capsys.readouterr().err
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["steps"] == stopped_at + 20


def test_resume_with_a_different_config_is_refused(tmp_path: Path, capsys):
    base = ["train", "--local", "--preset", "ring", "--out-root", str(tmp_path), "--name", "r",
            "--set", "train.steps=10", "--set", "data.n_train=2000"]  # fmt: skip
    assert main(base) == 0
    assert main([*base, "--set", "optim.lr_g=1e-4"]) == 2
    assert "different config (optim.lr_g" in capsys.readouterr().err


def test_a_relative_data_root_is_stored_absolute_and_runs_that_stored_one_relative_still_resume(
    tmp_path: Path, monkeypatch, capsys
):
    """A relative IDX root was stored as typed, so `evaluate` from another folder (or a Ray worker
    in another working directory) looked for the data somewhere else."""
    from gan_core.config import from_dict
    from gan_core.training import load_checkpoint, save_checkpoint
    from pipelines.settings import Settings
    from pipelines.tracking import runs as tracking

    monkeypatch.chdir(tmp_path)
    assert main(["config", "--preset", "ring", "--set", "data.root=idx"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["root"] == str(tmp_path / "idx")

    base = ["train", "--local", "--preset", "ring", "--out-root", str(tmp_path), "--name", "r",
            "--set", "data.n_train=2000", "--set", "data.root=idx"]  # fmt: skip
    assert main([*base, "--set", "train.steps=10"]) == 0
    saved = tmp_path / "r" / "checkpoints" / "step-000010.pt"
    checkpoint = load_checkpoint(saved)
    checkpoint["config"]["data"]["root"] = "idx"  # as runs before this change stored it
    save_checkpoint(checkpoint, saved)
    assert main([*base, "--set", "train.steps=20"]) == 0  # the same folder: not "a different config"

    relative = from_dict({**load_config(preset_path("ring")).to_dict(), "data": {"name": "ring", "root": "idx"}})
    client = tracking.client_for(Settings.from_env())
    tracking.find_or_create_run(client, Settings.from_env(), "r", relative.flat(), {})
    tracking.check_same_config(
        client, Settings.from_env(), "r", load_config(preset_path("ring"), ["data.root=idx"]).flat()
    )


def test_fewer_steps_than_trained_are_refused_and_the_run_is_left_as_it_was(tmp_path: Path, capsys):
    base = ["train", "--local", "--preset", "ring", "--out-root", str(tmp_path), "--name", "r",
            "--set", "data.n_train=2000", "--set", "train.log_every=5"]  # fmt: skip
    assert main([*base, "--set", "train.steps=10"]) == 0
    assert main([*base, "--set", "train.steps=5"]) == 2
    assert "train.steps=5 is not allowed: " in capsys.readouterr().err
    assert "steps: 10" in (tmp_path / "r" / "config.yaml").read_text()  # was rewritten with 5


def test_a_fresh_run_that_cannot_start_keeps_the_old_run_and_fails_before_any_work(tmp_path: Path, capsys):
    """--fresh deleted the old checkpoints before the new config was found unable to train; and a
    model that does not fit the data was refused only after the feature classifier had trained."""
    base = ["train", "--local", "--out-root", str(tmp_path), "--name", "r", "--set", "train.steps=10"]
    assert main([*base, "--preset", "ring", "--set", "data.n_train=2000"]) == 0
    capsys.readouterr()
    assert main([*base, "--preset", "digits-dcgan", "--set", "data.name=ring", "--fresh"]) == 2
    assert "DCGAN needs square images (C, H, H), got shape [2]" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "r" / "checkpoints").iterdir()] == ["step-000010.pt"]
    assert "name: ring" in (tmp_path / "r" / "config.yaml").read_text()
    assert main([*base, "--preset", "digits-dcgan", "--name", "big", "--set", "train.batch_size=5000"]) == 2
    err = capsys.readouterr().err
    assert "train.batch_size=5000 exceeds the 1438 training samples" in err
    assert "classifier" not in err  # refused before the evaluation's classifier trained
    assert not (tmp_path / "big").exists()  # no folder left holding only a lock file


def test_a_damaged_checkpoint_is_named_in_one_line(tmp_path: Path, capsys):
    base = ["train", "--local", "--preset", "ring", "--out-root", str(tmp_path), "--name", "r",
            "--set", "data.n_train=2000", "--set", "train.steps=10"]  # fmt: skip
    assert main(base) == 0
    newest = tmp_path / "r" / "checkpoints" / "step-000010.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a disk that filled up, a copy cut short
    capsys.readouterr()
    assert main([*base, "--set", "train.steps=20"]) == 2
    assert main(["evaluate", str(newest)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines  # was a traceback of torch's zip reader
    for line in lines:
        assert f"checkpoint {newest} cannot be read as a torch file" in line
    assert "pass --fresh" in lines[0] and "--fresh" not in lines[1]  # resuming can start over; evaluating cannot
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    assert main(["evaluate", str(tmp_path / "notes.txt")]) == 2  # was "error: pop from empty list"
    assert "notes.txt cannot be read as a torch file (not a torch file of tensors)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (torch.zeros(3), "it holds a Tensor, not a dict"),
        ({"weights": torch.zeros(3)}, "it lacks format, step, config, generator, discriminator (has weights)"),
        ({"format": 99, "step": 1, "config": {}, "generator": {}, "discriminator": {}}, "its format is 99"),
    ],
    ids=["tensor", "foreign-dict", "other-format"],
)
def test_a_torch_file_that_is_not_our_checkpoint_is_named_with_what_is_wrong(tmp_path: Path, capsys, content, problem):
    """Was `error: 'config'`, or `too many indices for tensor of dimension 1` after a torch warning."""
    path = tmp_path / "model.pt"
    torch.save(content, path)
    assert main(["evaluate", str(path)]) == 2
    assert main(["sample", str(path), "--out", str(tmp_path / "s.png")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    for line in lines:
        assert f"checkpoint {path} is not a ganpipe training checkpoint: {problem}" in line


def test_a_run_another_process_trains_is_refused_in_one_line(tmp_path: Path, capsys):
    from gan_core.outputs.run_lock import training_lock

    args = ["train", "--local", "--preset", "ring", "--out-root", str(tmp_path), "--name", "r",
            "--set", "train.steps=10", "--set", "data.n_train=2000"]  # fmt: skip
    with training_lock(tmp_path / "r"):  # as another process would hold it (flock is per open file)
        assert main(args) == 75
    assert f"ganpipe train: {tmp_path / 'r'} is in use by process {os.getpid()}" in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoints").exists()  # nothing of the running one was touched


def test_ray_s_sigterm_exit_outside_training_ends_in_one_line_with_143(monkeypatch, capsys):
    from pipelines.cli.options import ConfigChoice

    def ray_sigterm_handler(choice):
        raise SystemExit(15)  # Ray's handler in the driver: sys.exit(signum)

    monkeypatch.setattr(ConfigChoice, "resolve", ray_sigterm_handler)
    assert main(["config", "--preset", "ring"]) == 143
    assert capsys.readouterr().err == "ganpipe config: stopped (SIGTERM)\n"
    monkeypatch.setattr(ConfigChoice, "resolve", lambda choice: sys.exit(3))
    with pytest.raises(SystemExit, match="3"):  # any other exit passes through
        main(["config", "--preset", "ring"])


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "list", "losses"], capture_output=True, text=True, check=True
    )
    assert "nonsaturating" in out.stdout


def test_the_command_exits_with_main_s_code_and_leaves_its_objects_to_the_os(monkeypatch):
    """The console entry point freezes the heap so the interpreter's exit skips collecting it."""
    import gc

    import pipelines.cli.main as cli

    monkeypatch.setattr(cli, "main", lambda: 3)
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.console()
        assert exit_info.value.code == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_evaluate_a_run_folder_with_bootstrap_intervals(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("GANPIPE_HOME", str(tmp_path / "home"))
    args = ["train", "--local", "--preset", "ring", "--out-root", str(tmp_path), "--name", "r",
            "--set", "train.steps=30", "--set", "data.n_train=2000"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r"), "--bootstrap", "30", "--n-samples", "500"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_samples"] == 500 and report["bootstrap"] == 30
    for pair in report["metrics"].values():
        if "ci_low" in pair:
            assert pair["ci_low"] <= pair["ci_high"]
    assert "ci_low" in report["metrics"]["high_quality"]
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["train", "--name", "../escaped", "--local"], "'--name': '../escaped' is not allowed"),
        (["train", "--name", "", "--local"], "'--name': '' is not allowed"),
        (["train", "--workers", "0"], "'--workers': 0 is not allowed: an integer >= 1"),
        (["evaluate", "runs/x", "--n-samples", "0"], "'--n-samples': 0 is not allowed: an integer >= 10"),
        (["evaluate", "runs/x", "--bootstrap", "-1"], "'--bootstrap': -1 is not allowed: an integer >= 0"),
        (["tune", "--resume", "a/b"], "'--resume': 'a/b' is not allowed"),
        (["pipeline", "--gpus-per-worker", "-1"], "'--gpus-per-worker': -1 is not allowed: a number >= 0"),
        (["pipeline", "--cpus-per-worker", "nan"], "'--cpus-per-worker': nan is not allowed: a number >= 0"),
        (["bench", "quality", "--seeds", "0"], "'--seeds': 0 is not allowed: an integer >= 1"),
        (["bench", "quality", "--threads", "two"], "'--threads': 'two' is not an integer"),
        (["bench", "quality", "--bench", "rign"], "'--bench': 'rign' is not one of grid, ring, stacked"),
        (["tune", "--scheduler", "hyperband"], "'--scheduler': Value error, 'hyperband' is not one of 'asha', 'pbt'"),
    ],
)
def test_options_out_of_range_are_refused_where_they_are_read(argv, said, capsys):
    """Each used to be taken: `--name ../x` wrote outside the runs folder, `--n-samples 0` was
    read as the default, `--seeds 0` ended in an IndexError, `--threads 0` in a traceback. Said in
    one line naming the command, the option, the value and what is allowed (not Typer's box)."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    command = " ".join(word for word in argv[:2] if word in ("bench", "quality") or word == argv[0])
    assert len(lines) == 1 and lines[0].startswith(f"ganpipe {command}: error: Invalid value for {said}"), lines


def test_a_misspelt_command_is_refused_in_one_line_with_a_suggestion(capsys):
    assert main(["trian", "--preset", "ring"]) == 2
    assert capsys.readouterr().err == "ganpipe: error: No such command 'trian'. Did you mean 'train'?\n"


def test_local_runs_and_their_classifier_live_under_ganpipe_home(tmp_path: Path, capsys):
    """--out-root defaulted to ./runs and the classifier was cached in OUT_ROOT/.cache, where
    `ganpipe evaluate` (GANPIPE_HOME/classifiers) did not look and trained it again."""
    args = ["train", "--local", "--preset", "digits-dcgan", "--name", "d", "--set", "train.steps=2",
            "--set", "eval.classifier_epochs=1", "--set", "eval.n_samples=100"]  # fmt: skip
    assert main(args) == 0
    home = tmp_path / "home"
    assert (home / "d" / "checkpoints" / "step-000002.pt").is_file()
    assert len(list((home / "classifiers").glob("classifier-digits-*.pt"))) == 1
    capsys.readouterr()
    assert main(["evaluate", str(home / "d"), "--bootstrap", "0", "--n-samples", "100"]) == 0
    assert "feature classifier" not in capsys.readouterr().err  # read from the cache, not trained
    (tmp_path / "afile").write_text("")
    assert main(["train", "--local", "--out-root", str(tmp_path / "afile")]) == 2
    assert "--out-root " + str(tmp_path / "afile") + " is a file" in capsys.readouterr().err


def test_a_distributed_run_that_cannot_train_is_refused_before_ray_starts(tmp_path: Path, monkeypatch, capsys):
    import pipelines.cluster.connect

    monkeypatch.setattr(pipelines.cluster.connect, "ensure_ray", lambda *a, **k: pytest.fail("Ray was started"))
    args = ["train", "--preset", "digits-dcgan", "--workers", "3", "--set", "train.batch_size=100"]
    assert main(args) == 2
    assert "train.batch_size=100 is not divisible by 3 workers" in capsys.readouterr().err
    assert not list((tmp_path / "home" / "storage" / "checkpoints").glob("*/lease.json"))  # released


def test_sync_batchnorm_on_cpu_workers_is_refused_before_ray_starts(monkeypatch, capsys):
    """torch syncs batch norm on GPUs only: every CPU worker failed in DDP's set-up, three attempts
    and 236 lines of tracebacks later (measured: 66 s for `--preset digits-dcgan --workers 2`)."""
    import pipelines.cluster.connect
    from pipelines.train.scaling import Scaling

    monkeypatch.setattr(pipelines.cluster.connect, "ensure_ray", lambda *a, **k: pytest.fail("Ray was started"))
    assert main(["train", "--preset", "digits-dcgan", "--workers", "2", "--sync-batchnorm"]) == 2
    assert "--sync-batchnorm needs GPU workers (--gpus-per-worker > 0)" in capsys.readouterr().err
    assert Scaling(workers=2, gpus_per_worker=1, sync_batchnorm=True).per_worker() == {"CPU": 1.0, "GPU": 1}


def test_a_ray_run_resumed_with_another_config_is_refused_before_ray_starts(tmp_path: Path, monkeypatch, capsys):
    """Ray Train resumed the checkpoint under the new config: silently with another learning rate,
    or failing three times on weights of another shape (and marking the finished run FAILED)."""
    import pipelines.train.scaling
    from pipelines.settings import Settings
    from pipelines.tracking import runs as tracking

    config = load_config(preset_path("ring"))
    client = tracking.client_for(Settings.from_env())
    tracking.find_or_create_run(client, Settings.from_env(), "r", config.flat(), {})  # as a first training left it

    class RayStarting(Exception):
        pass

    def ensure_ray(*args, **kwargs):
        raise RayStarting

    monkeypatch.setattr(pipelines.train.scaling, "ensure_ray", ensure_ray)
    assert main(["train", "--preset", "ring", "--name", "r", "--set", "optim.lr_g=1e-3"]) == 2
    assert "run r was trained with a different config (optim.lr_g: 0.0005 -> 0.001)" in capsys.readouterr().err
    with pytest.raises(RayStarting):  # more steps: the same run, continued
        main(["train", "--preset", "ring", "--name", "r", "--set", "train.steps=5000"])


@pytest.mark.parametrize("flag", [["--fresh"], ["--out-root", "elsewhere"]])
def test_local_only_flags_are_refused_for_a_ray_run(flag, capsys):
    assert main(["train", "--preset", "ring", *flag]) == 2
    assert f"{flag[0]} is not allowed without --local" in capsys.readouterr().err


def test_the_checkpoint_folder_a_ray_run_names_can_be_evaluated(tmp_path: Path, capsys):
    """`ganpipe train` ends with "checkpoints: FOLDER"; evaluating that folder found nothing."""
    assert main(["train", "--local", "--preset", "ring", "--out-root", str(tmp_path), "--name", "r",
                 "--set", "data.n_train=2000", "--set", "train.steps=10"]) == 0  # fmt: skip
    storage = tmp_path / "storage" / "checkpoints" / "r"
    saved = (tmp_path / "r" / "checkpoints" / "step-000010.pt").read_bytes()
    for stamp in ("2026-12-01_10-00-00.000001", "2026-12-01_10-05-00.000001"):
        (storage / f"checkpoint_{stamp}").mkdir(parents=True)
        (storage / f"checkpoint_{stamp}" / "state.pt").write_bytes(saved)
    capsys.readouterr()
    assert main(["evaluate", str(storage), "--bootstrap", "0", "--n-samples", "100"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == f"{storage} (step 10)"


def test_register_with_local_is_refused(tmp_path: Path, capsys):
    assert main(["train", "--local", "--out-root", str(tmp_path), "--register", "m"]) == 2
    assert "--register is not allowed with --local" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "ours", "theirs"),
    [
        ("PREFECT_SERVER_ANALYTICS_ENABLED", "false", "true"),
        ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true", "false"),
    ],
)
def test_library_chatter_is_off_unless_the_user_turned_it_on(variable, ours, theirs, monkeypatch, capsys):
    monkeypatch.delenv(variable, raising=False)
    assert main(["list", "presets"]) == 0
    assert os.environ[variable] == ours
    monkeypatch.setenv(variable, theirs)
    assert main(["list", "presets"]) == 0
    assert os.environ[variable] == theirs


def test_help_names_each_default_once(capsys):
    assert main(["train", "--help"]) == 0
    assert "[default: None]" not in capsys.readouterr().out.replace("\n", " ")


def test_a_model_uri_mlflow_does_not_know_is_named_in_one_line(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("GANPIPE_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlflow.db").touch()  # a store, empty: MLflow makes its tables
    assert main(["evaluate", "runs:/abc/model"]) == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said == "ganpipe evaluate: error: runs:/abc/model: Run with id=abc not found"
    assert main(["evaluate", "models:/"]) == 2  # was a traceback
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("ganpipe evaluate: error: models:/: ")
    assert main(["evaluate", "runs/x", "--json", str(tmp_path / "nowhere" / "x.json")]) == 2
    assert "--json " + str(tmp_path / "nowhere" / "x.json") + ": folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["prepare", "digitz"], "source 'digitz' cannot be prepared; allowed: digits, ring, grid, mnist, fashion"),
        (["rollback", "ring-generatr"], "no registered model named 'ring-generatr'"),  # was: has no previous-champion
        (["pipeline", "--source", "mnist"], "source mnist is read from IDX files: pass --source-root"),
        (["deploy", "--param", 'presett="ring"'], "--param presett: gan-pipeline has no such parameter; it has name,"),
        (["deploy", "--nightly-cron", "61 2 * * *"], "--nightly-cron '61 2 * * *' is not a cron expression"),
        (["tune", "--resume", "s1", "--preset", "ring"], "--resume s1 continues the search as it was saved"),
    ],
)
def test_mistakes_are_refused_before_prefect_or_ray_start(argv, said, monkeypatch, capsys):
    """Each used to end in Prefect's tracebacks (60 to 190 lines), or to be accepted: an unknown
    deployment parameter failed every scheduled run, extra options beside --resume were ignored."""
    import pipelines.flows.server as server

    monkeypatch.setattr(server, "start_ephemeral_server_deaf_to_ctrl_c", lambda: pytest.fail("Prefect started"))
    assert main(argv) == 2
    assert said in capsys.readouterr().err


def _logged_through(logger, error: Exception) -> str:
    """The line `logger` writes for `error` raised and logged as Prefect's engine logs it, through its filters."""
    import logging

    try:
        raise error
    except Exception:
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, repr(error), (), sys.exc_info())
    assert logger.filter(record)
    return logging.Formatter().format(record)


def test_prefect_logs_a_bad_input_s_failure_without_traceback_and_other_failures_with_theirs():
    """`ganpipe prepare mnist --root bad` printed 90 lines, Prefect's traceback of its flow run,
    before its own line naming the label out of range."""
    import logging

    from gan_core.data.idx import IdxFormatError
    from pipelines.cli.flows import prefect_logs_without_tracebacks_of_one_line_errors

    logger = logging.getLogger("prefect.flow_runs")
    with prefect_logs_without_tracebacks_of_one_line_errors():
        errors = (IdxFormatError("bad/train-labels-idx1-ubyte: labels must lie in 0..9"), RuntimeError("bug"))
        lines = [_logged_through(logger, error) for error in errors]
    assert len(lines) == 2 and "labels must lie in 0..9" in lines[0] and "Traceback" not in lines[0]
    assert "Traceback" in lines[1] and "RuntimeError: bug" in lines[1]


def test_a_deployment_s_requested_stop_is_logged_without_traceback_and_other_errors_with_theirs():
    """A cancelled deployment run logged its TrainingStopped three times with a traceback each."""
    import logging

    from gan_core.training.stopping import TrainingStopped
    from pipelines.runtime.logs import PREFECT_ENGINE_LOGGERS, log_requested_stops_in_one_line

    loggers = [logging.getLogger(name) for name in PREFECT_ENGINE_LOGGERS]
    before = [list(logger.filters) for logger in loggers]
    try:
        log_requested_stops_in_one_line()
        log_requested_stops_in_one_line()  # the flow of a second run in the same process
        assert [len(logger.filters) for logger in loggers] == [len(kept) + 1 for kept in before]
        for logger in loggers:
            lines = [_logged_through(logger, error) for error in (TrainingStopped(268, "SIGTERM"), RuntimeError("bug"))]
            assert "stopped at step 268 (SIGTERM)" in lines[0] and "Traceback" not in lines[0]
            assert "Traceback" in lines[1] and "RuntimeError: bug" in lines[1]
    finally:
        for logger, kept in zip(loggers, before, strict=True):
            logger.filters[:] = kept


def test_an_evaluation_records_the_version_an_alias_pointed_at():
    """An evaluation of models:/NAME@champion was tagged with the alias only: after a rollback no
    one could tell which version it had judged."""
    from pipelines.evaluate.report import model_lineage
    from pipelines.settings import Settings
    from pipelines.tracking import runs as tracking

    client = tracking.client_for(Settings.from_env())
    run = client.create_run(tracking.experiment_id(client, Settings.from_env()))
    client.create_registered_model("digits-generator")
    for _ in range(2):
        client.create_model_version("digits-generator", f"runs:/{run.info.run_id}/generator", run.info.run_id)
    client.set_registered_model_alias("digits-generator", "champion", "2")
    pinned = {"ganpipe.model_name": "digits-generator", "ganpipe.model_run_id": run.info.run_id}
    assert model_lineage(client, "models:/digits-generator@champion") == {**pinned, "ganpipe.model_version": "2"}
    assert model_lineage(client, "models:/digits-generator/1") == {**pinned, "ganpipe.model_version": "1"}
    assert model_lineage(client, f"runs:/{run.info.run_id}/generator") == {"ganpipe.model_run_id": run.info.run_id}
    assert model_lineage(client, "models:/no-such-model@champion") == {}
    # What `ganpipe train` logs: MLflow 3's logged model, models:/m-<id>.
    logged = client.create_logged_model(
        tracking.experiment_id(client, Settings.from_env()), source_run_id=run.info.run_id
    )
    assert model_lineage(client, f"models:/{logged.model_id}") == {
        "ganpipe.model_id": logged.model_id,
        "ganpipe.model_run_id": run.info.run_id,
    }


def test_pipeline_passes_cpus_per_worker_to_the_flow(monkeypatch):
    """A Ray worker gets as many torch threads as CPUs it reserves, so on a 2-core machine the
    pipeline's single training worker ran at one thread until it could ask for two."""
    import pipelines.cli.flows as cli_flows
    import pipelines.flows.server as ephemeral

    calls = []
    monkeypatch.setattr(ephemeral, "start_ephemeral_server_deaf_to_ctrl_c", lambda: None)
    monkeypatch.setattr(pipelines.flows.pipeline, "gan_pipeline", lambda **kwargs: calls.append(kwargs) or {})
    monkeypatch.setattr(cli_flows, "_print_where", lambda summary, settings: None)
    assert main(["pipeline", "--name", "p", "--cpus-per-worker", "2", "--workers", "1"]) == 0
    assert calls[0]["cpus_per_worker"] == 2.0 and calls[0]["workers"] == 1
    assert main(["pipeline", "--name", "p"]) == 0
    assert calls[1]["cpus_per_worker"] is None  # decided once the cluster is known


@pytest.mark.parametrize(
    ("asked", "workers", "local_cpus", "reserved"),
    [
        (None, 1, 2.0, 2.0),  # one worker alone on a local cluster: all of its CPUs
        (None, 2, 16.0, 8.0),
        (None, 3, 2.0, 1.0),  # more workers than CPUs: 1 each, which the room check then refuses
        (None, 2, None, 1.0),  # a cluster at RAY_ADDRESS, which other jobs share
        (0.5, 1, 16.0, 0.5),  # as asked
    ],
)
def test_workers_share_a_local_cluster_s_cpus_unless_told_otherwise(asked, workers, local_cpus, reserved):
    from pipelines.train.scaling import Scaling

    assert Scaling(workers, asked).sized_for(local_cpus).per_worker() == {"CPU": reserved}


def test_the_cpus_of_a_cluster_the_command_started_are_known_and_of_one_it_joined_not(monkeypatch):
    import ray

    import pipelines.cluster.connect as ray_cluster

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 6.0})
    monkeypatch.setattr(ray_cluster, "wait_for_cluster", lambda *args: None)
    monkeypatch.setattr("pipelines.cluster.local.stop_without_grace", lambda: True)
    monkeypatch.setattr(ray_cluster, "_local_cpus", None)
    ray_cluster.ensure_ray("10.0.0.1:6379", log=lambda _: None)
    assert ray_cluster.local_cluster_cpus() is None
    ray_cluster.ensure_ray(None, log=lambda _: None)
    assert ray_cluster.local_cluster_cpus() == 6.0
