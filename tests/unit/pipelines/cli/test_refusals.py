"""A server that refuses the account: one line naming the server, the user and the fix; exit 77."""

import httpx
import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings

from pipelines.cli.errors import one_line_for

SERVER = "http://user:secret-pw@mlflow.example:5000"


@pytest.fixture(autouse=True)
def tracking(monkeypatch):
    # What the command talks to: MLflow's current URI (other tests may have set one in this process).
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: SERVER)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_AUTH_STRING}):
        yield


def _mlflow(code: str, endpoint: str = "/api/2.0/mlflow/experiments/search") -> MlflowException:
    message = f"API request to endpoint {endpoint} failed with error code 4xx != 200."
    return MlflowException(message, error_code=getattr(databricks_pb2, code))  # as MLflow's REST client raises it


def _prefect(status: int) -> PrefectHTTPStatusError:
    request = httpx.Request("GET", "http://prefect.example:4200/api/admin/version")
    response = httpx.Response(status, request=request, json={"exception_message": "Unauthorized"})
    return PrefectHTTPStatusError(f"Client error '{status}'", request=request, response=response)


def test_mlflow_without_credentials_asks_for_them_without_showing_the_uri_s_password():
    line, status = one_line_for(_mlflow("UNAUTHENTICATED"))
    assert status == 77
    assert line == (
        "error: the MLflow server http://***@mlflow.example:5000 asks who you are: "
        "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    )


def test_mlflow_with_a_wrong_password_names_the_user(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-pw")
    line, status = one_line_for(_mlflow("UNAUTHENTICATED"))
    assert status == 77 and "did not accept user 'reader'" in line and "wrong-pw" not in line


def test_mlflow_permission_denied_names_the_user_and_the_refused_request(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader")
    line, status = one_line_for(_mlflow("PERMISSION_DENIED", "/api/2.0/mlflow/registered-models/alias"))
    assert status == 77
    assert "refused user 'reader'" in line and "(/api/2.0/mlflow/registered-models/alias)" in line
    assert "\n" not in line


def test_other_mlflow_errors_are_not_refusals():
    assert one_line_for(_mlflow("INTERNAL_ERROR")) is None


def test_prefect_without_an_auth_string_asks_for_one():
    line, status = one_line_for(_prefect(401))
    assert status == 77
    assert line == (
        "error: the Prefect server http://prefect.example:4200 asks who you are: "
        "set PREFECT_API_AUTH_STRING to its user:password"
    )


def test_prefect_with_a_wrong_auth_string_says_to_check_it():
    with temporary_settings({PREFECT_API_AUTH_STRING: "ganpipe:wrong"}):
        line, status = one_line_for(_prefect(401))
    assert status == 77 and "check PREFECT_API_AUTH_STRING" in line and "wrong" not in line


def test_other_prefect_answers_are_not_refusals():
    assert one_line_for(_prefect(500)) is None
