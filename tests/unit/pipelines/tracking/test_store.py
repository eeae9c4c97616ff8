"""Commands that read what training made name the MLflow store they looked in when it is a
SQLite file that is not there, and do not create it empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli.main import main
from pipelines.settings import Settings
from pipelines.tracking.store import require_existing_store, sqlite_file


@pytest.fixture()
def elsewhere(tmp_path: Path, monkeypatch) -> Path:
    """A folder nobody trained in, with the embedded default (no MLFLOW_TRACKING_URI, no GANPIPE_HOME)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("GANPIPE_HOME", raising=False)
    return tmp_path


def test_the_file_of_a_sqlite_uri():
    assert sqlite_file("sqlite:///runs/mlflow.db") == Path("runs/mlflow.db")
    assert sqlite_file("sqlite:////abs/mlflow.db?timeout=5") == Path("/abs/mlflow.db")
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("http://mlflow:5000") is None


def test_the_default_store_missing_is_named_with_how_it_was_chosen(elsewhere: Path):
    expected = rf"no MLflow store at {elsewhere / 'runs' / 'mlflow.db'}: MLFLOW_TRACKING_URI is unset.*GANPIPE_HOME"
    with pytest.raises(FileNotFoundError, match=expected):
        require_existing_store(Settings.from_env())
    assert not (elsewhere / "runs").exists()


def test_a_tracking_uri_naming_a_missing_file_is_named(elsewhere: Path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere / 'typo.db'}")
    with pytest.raises(FileNotFoundError, match=r"MLFLOW_TRACKING_URI=sqlite:///.*typo\.db names a file that does"):
        require_existing_store(Settings.from_env())


def test_an_existing_store_and_a_server_pass(elsewhere: Path, monkeypatch):
    (elsewhere / "there.db").touch()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere / 'there.db'}")
    require_existing_store(Settings.from_env())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    require_existing_store(Settings.from_env())


@pytest.mark.parametrize(
    "argv",
    [
        ["promote", "digits-generator"],
        ["rollback", "digits-generator"],
        ["sample", "models:/digits-generator@champion"],
    ],
)
def test_reading_commands_stop_in_one_line_and_create_nothing(elsewhere: Path, argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ganpipe {argv[0]}: error: no MLflow store at ") and "\n" not in err
    assert list(elsewhere.iterdir()) == []
