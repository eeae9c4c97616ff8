"""Which faults the pipeline's tasks retry: unreachable services yes, bad data and bad config never,
decided by the errors' types as the libraries raise them, never by their words."""

import botocore.exceptions
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

from gan_core.config import ConfigError
from gan_core.data.idx import IdxFormatError
from gan_core.data.validation import DataValidationError
from pipelines.runtime.faults import is_transient
from pipelines.storage.location import StorageError


def _raised_while_handling(cause: Exception, error: Exception) -> Exception:
    try:
        try:
            raise cause
        except type(cause):
            raise error  # noqa: B904 - as the library does: the cause is the context, not `from`
    except type(error) as raised:
        return raised


@pytest.mark.parametrize(
    "error",
    [
        StorageError("s3://b: S3 endpoint http://x is unreachable", transient=True),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("read timed out"),
        requests.ConnectionError("boom"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        # MLflow's REST client raises its own error inside `except` of requests' (rest_utils.py)
        _raised_while_handling(requests.ConnectionError("Max retries exceeded"), MlflowException("API request failed")),
        # ... and its SQL store answers a locked SQLite file "temporarily unavailable" (db/utils.py)
        MlflowException("(sqlite3.OperationalError) database is locked", error_code=TEMPORARILY_UNAVAILABLE),
    ],
)
def test_unreachable_services_are_transient(error):
    assert is_transient(error)


def test_words_in_a_message_decide_nothing():
    assert not is_transient(RuntimeError("connection refused; timed out; database is locked"))


@pytest.mark.parametrize(
    "error",
    [
        DataValidationError("/data/x", "label range", "labels must lie in 0..9, found 0..12"),
        IdxFormatError("/data/train-images-idx3-ubyte: wrong magic number"),
        ConfigError("optim.lr_g: expected a float > 0, got -1"),
        StorageError("s3://b: bucket 'b' does not exist"),
        FileNotFoundError("/data/missing"),
        ValueError("something else entirely"),
        MlflowException("RESOURCE_DOES_NOT_EXIST: registered model 'x' not found"),
    ],
)
def test_bad_input_is_never_retried(error):
    assert not is_transient(error)


def test_the_cause_chain_is_followed():
    try:
        try:
            raise ConnectionRefusedError("refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("the training run could not report") from inner
    except RuntimeError as outer:
        assert is_transient(outer)
