"""Credentials end to end: MLflow's basic-auth app and a Prefect server with an auth string.

Two accounts on the MLflow server: `promoter`, who runs the pipeline (so owns what it creates),
and `reader`, with READ on the registered model. The commands run as a user would run them,
with the credentials in the environment only; the test then looks for every secret in
everything the commands printed and wrote: MLflow params, tags, descriptions and artifacts,
Prefect's flow and task runs and their logs, the files under GANPIPE_HOME.
"""

from __future__ import annotations

import base64
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.services import BIN, mlflow_server, prefect_server

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "admin-pw-7f3a91c2d4"
PROMOTER_PASSWORD = "promoter-pw-2b8e64a1f0"
READER_PASSWORD = "reader-pw-9c1d57e3b6"
PREFECT_AUTH = "ganpipe:prefect-pw-4e6a08d2c9"
SECRETS = [ADMIN_PASSWORD, PROMOTER_PASSWORD, READER_PASSWORD, PREFECT_AUTH, PREFECT_AUTH.split(":")[1]]
# What travels in the Authorization header, in case anything records a request.
SECRETS += [base64.b64encode(s.encode()).decode() for s in (f"promoter:{PROMOTER_PASSWORD}", PREFECT_AUTH)]
MODEL = "secure-generator"
REFUSED = 77  # pipelines/cli/refusals.py


@dataclass(frozen=True)
class Secured:
    mlflow: str
    prefect: str
    folder: Path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("secured")
    with mlflow_server(folder, str(folder / "artifacts"), None, admin_password=ADMIN_PASSWORD) as mlflow_url:
        with _as_user("admin", ADMIN_PASSWORD):
            from mlflow.server import get_app_client

            users = get_app_client("basic-auth", tracking_uri=mlflow_url)
            users.create_user("promoter", PROMOTER_PASSWORD)
            users.create_user("reader", READER_PASSWORD)
        with prefect_server(folder, {}, auth_string=PREFECT_AUTH) as api:
            yield Secured(mlflow_url, api, folder)


@contextmanager
def _as_user(user: str, password: str):
    """MLflow's client reads the account from the environment at each request."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", user)
        patch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        yield


def _env(secured: Secured, home: Path, user: str | None, password: str | None, prefect_auth: str | None):
    """A user's shell: the services' addresses, local storage and Ray, and only the given secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_", "RAY_ADDRESS"))}
    env.update(
        GANPIPE_HOME=str(home),
        GANPIPE_STORAGE=str(home / "storage"),
        GANPIPE_EXPERIMENT="secured",
        MLFLOW_TRACKING_URI=secured.mlflow,
        PREFECT_API_URL=secured.prefect,
        PREFECT_HOME=str(home / "prefect"),
    )
    if user is not None:
        env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
    if prefect_auth is not None:
        env["PREFECT_API_AUTH_STRING"] = prefect_auth
    return env


def _ganpipe(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ganpipe"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_each_server_refuses_a_missing_or_wrong_account_in_one_line(secured: Secured, tmp_path: Path):
    nobody = _ganpipe(_env(secured, tmp_path, None, None, PREFECT_AUTH), "promote", MODEL)
    assert nobody.returncode == REFUSED and nobody.stderr.strip().count("\n") == 0, nobody.stderr
    assert f"the MLflow server {secured.mlflow} asks who you are" in nobody.stderr
    assert "MLFLOW_TRACKING_USERNAME" in nobody.stderr

    wrong = _ganpipe(_env(secured, tmp_path, "promoter", "not-the-password", PREFECT_AUTH), "promote", MODEL)
    assert wrong.returncode == REFUSED and "did not accept user 'promoter'" in wrong.stderr, wrong.stderr

    no_prefect = _ganpipe(_env(secured, tmp_path, "promoter", PROMOTER_PASSWORD, None), "prepare", "digits")
    server = secured.prefect.removesuffix("/api")
    assert no_prefect.returncode == REFUSED and no_prefect.stderr.strip().count("\n") == 0, no_prefect.stderr
    assert f"the Prefect server {server} asks who you are" in no_prefect.stderr
    assert "PREFECT_API_AUTH_STRING" in no_prefect.stderr
    for result in (nobody, wrong, no_prefect):
        _assert_no_secret(result.stdout + result.stderr, "command output")


def test_a_promoter_runs_the_pipeline_a_reader_cannot_move_the_champion_and_nothing_records_a_secret(
    secured: Secured, tmp_path: Path
):
    promoter = _env(secured, tmp_path, "promoter", PROMOTER_PASSWORD, PREFECT_AUTH)
    pipeline = _ganpipe(promoter, "pipeline", "--name", "secure", "--search-samples", "0", "--train-steps", "300",
                        "--bootstrap", "10")  # fmt: skip
    assert pipeline.returncode == 0, pipeline.stderr[-3000:]
    outputs = [pipeline]

    with _as_user("admin", ADMIN_PASSWORD):
        from mlflow.server import get_app_client

        get_app_client("basic-auth", tracking_uri=secured.mlflow).grant_user_permission(
            "reader", "registered_model", MODEL, "READ"
        )
    with _as_user("promoter", PROMOTER_PASSWORD):
        client = MlflowClient(secured.mlflow)
        first = client.get_model_version(MODEL, "1")
        model_id = first.source.removeprefix("models:/")  # a logged model, models:/m-ID
        second = client.create_model_version(MODEL, first.source, first.run_id, model_id=model_id).version
        champion_before = _champion(client)

    # margin -1: the decision moves the alias whatever the gates say of an equal generator
    reader = _ganpipe(_env(secured, tmp_path, "reader", READER_PASSWORD, PREFECT_AUTH), "promote", MODEL,
                      "--version", second, "--margin", "-1", "--bootstrap", "10")  # fmt: skip
    outputs.append(reader)
    assert reader.returncode == REFUSED and reader.stderr.strip().count("\n") == 0, reader.stderr
    assert f"the MLflow server {secured.mlflow} refused user 'reader'" in reader.stderr
    with _as_user("promoter", PROMOTER_PASSWORD):
        assert _champion(client) == champion_before
        assert "promotion.last" not in client.get_model_version(MODEL, second).tags

    # The same promotion as its owner goes through: the reader was refused for the account, and
    # the refused attempt left no lease behind (this one would wait for it).
    again = _ganpipe(promoter, "promote", MODEL, "--version", second, "--margin", "-1", "--bootstrap", "10")
    outputs.append(again)
    assert again.returncode == 0, again.stderr[-3000:]
    with _as_user("promoter", PROMOTER_PASSWORD):
        assert client.get_model_version(MODEL, second).tags["promotion.last"] in ("promoted", "refused")

    for result in outputs:
        _assert_no_secret(result.stdout + result.stderr, f"output of ganpipe {result.args[1]}")
    _assert_no_secret_in_mlflow(secured)
    _assert_no_secret_in_prefect(secured)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            _assert_no_secret(path.read_bytes().decode("latin-1"), str(path))


def _champion(client: MlflowClient) -> str | None:
    aliases = client.get_registered_model(MODEL).aliases
    return aliases.get("champion")


def _assert_no_secret(text: str, where: str) -> None:
    found = [secret for secret in SECRETS if secret in text]
    assert not found, f"{where} holds a credential"


def _assert_no_secret_in_mlflow(secured: Secured) -> None:
    import mlflow

    with _as_user("admin", ADMIN_PASSWORD):
        client = MlflowClient(secured.mlflow)
        experiments = client.search_experiments()
        runs = client.search_runs([e.experiment_id for e in experiments])
        assert runs, "the pipeline logged no run"
        for run in runs:
            _assert_no_secret(repr((run.data.params, run.data.tags, run.info.run_name)), f"run {run.info.run_id}")
            folder = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=secured.mlflow)
            for path in Path(folder).rglob("*"):
                if path.is_file():
                    _assert_no_secret(
                        path.read_bytes().decode("latin-1"), f"artifact {path.name} of run {run.info.run_id}"
                    )
        for model in client.search_registered_models():
            _assert_no_secret(repr((model.description, model.tags)), f"model {model.name}")
            for version in client.search_model_versions(f"name='{model.name}'"):
                _assert_no_secret(repr((version.description, version.tags)), f"{model.name} v{version.version}")


def _assert_no_secret_in_prefect(secured: Secured) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    where = {PREFECT_API_URL: secured.prefect, PREFECT_API_AUTH_STRING: PREFECT_AUTH}
    with temporary_settings(where), get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs()
        assert flow_runs, "the pipeline left no flow run"
        for run in [*flow_runs, *client.read_task_runs()]:
            _assert_no_secret(run.model_dump_json(), f"Prefect run {run.name}")
        logs, offset = [], 0
        while page := client.read_logs(offset=offset):
            logs += page
            offset += len(page)
        assert logs, "the pipeline sent Prefect no log"
        _assert_no_secret("\n".join(log.message for log in logs), "Prefect's logs")
