"""Which faults the pipeline's tasks retry: unreachable services yes, bad data and bad config never."""

import botocore.exceptions
import pytest
import requests
from mlflow.exceptions import MlflowException

from gan_core.config import ConfigError
from gan_core.data.idx import IdxFormatError
from gan_core.data.validation import DataValidationError
from pipelines.faults import is_transient
from pipelines.storage import StorageError


@pytest.mark.parametrize(
    "error",
    [
        StorageError("s3://b: S3 endpoint http://x is unreachable", transient=True),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("read timed out"),
        requests.ConnectionError("boom"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        MlflowException("API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/create failed: Max retries exceeded"),
        MlflowException("(sqlite3.OperationalError) database is locked"),
    ],
)
def test_unreachable_services_are_transient(error):
    assert is_transient(error)


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
