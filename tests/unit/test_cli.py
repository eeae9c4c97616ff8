import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "evaluate", "config", "list"):
        assert command in out


def test_subcommand_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "(default: runs)" in capsys.readouterr().out


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


def test_resume_with_a_different_config_is_refused(tmp_path: Path, capsys):
    base = ["train", "--local", "--preset", "ring", "--out-root", str(tmp_path), "--name", "r",
            "--set", "train.steps=10", "--set", "data.n_train=2000"]  # fmt: skip
    assert main(base) == 0
    assert main([*base, "--set", "optim.lr_g=1e-4"]) == 2
    assert "different config (optim.lr_g" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "list", "losses"], capture_output=True, text=True, check=True
    )
    assert "nonsaturating" in out.stdout


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
