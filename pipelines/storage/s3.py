"""S3 as the pipeline reaches it: the endpoint, a pyarrow filesystem, and whether a bucket answers.

The endpoint (MinIO, moto, any S3-compatible server), region and credentials come from the
standard AWS variables (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, ...); none of
them is ever logged. pyarrow's own retry strategy (the AWS SDK's standard one) rides out blips;
storage/retry.py waits out longer outages on top of it.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pyarrow.fs as pafs

from pipelines.runtime.waiting import socket_reason

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 60.0  # one request: a checkpoint part going up counts as one
SDK_ATTEMPTS = 3  # the AWS SDK's own tries of each request, a second or two in all


class StorageError(RuntimeError):
    """Storage is unusable; the message names the URI and the cause. `transient`: the cause may
    pass on its own (an endpoint that does not answer), unlike a missing bucket."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def s3_endpoint() -> str | None:
    """The endpoint URL from the environment, or None for AWS itself; refuses one without a scheme."""
    given = {
        "AWS_ENDPOINT_URL_S3": os.environ.get("AWS_ENDPOINT_URL_S3"),
        "AWS_ENDPOINT_URL": os.environ.get("AWS_ENDPOINT_URL"),
    }
    for variable, value in given.items():
        if value and "://" not in value:
            raise StorageError(
                f"{variable}={value!r} is not allowed: a URL with its scheme, e.g. http://{value} or https://{value}"
            )
        if value:
            return value
    return None


def s3_place() -> str:
    """Where S3 requests go, for messages: the endpoint's URL, or AWS itself."""
    return f"endpoint {s3_endpoint()}" if s3_endpoint() else "AWS S3"


def s3_filesystem() -> pafs.S3FileSystem:
    endpoint = s3_endpoint()
    options: dict[str, object] = {
        "region": os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=SDK_ATTEMPTS),
        "connect_timeout": CONNECT_TIMEOUT_S,
        "request_timeout": REQUEST_TIMEOUT_S,
        # Uploads run in the caller's thread: storage/retry.py uploads from inside copy_files'
        # thread pool, where background writes would queue behind the threads waiting for them.
        "background_writes": False,
    }
    if endpoint:
        parsed = urlparse(endpoint)
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:  # explicit, so that Ray workers on other nodes receive them with the filesystem
        options.update(access_key=key, secret_key=secret, session_token=os.environ.get("AWS_SESSION_TOKEN"))
    return pafs.S3FileSystem(**options)


def s3_client(connect_timeout_s: float = 3, read_timeout_s: float = 5, attempts: int = 1):
    """A boto3 client of the endpoint; one try per request by default (callers wait themselves)."""
    # boto3 is imported where it is used: a Ray Train worker on local storage never reaches S3 and
    # need not have it (a GPU machine that carries only what training needs, bench/ray_gpu.py).
    import boto3
    import botocore.config

    config = botocore.config.Config(
        connect_timeout=connect_timeout_s, read_timeout=read_timeout_s, retries={"total_max_attempts": attempts}
    )
    return boto3.client("s3", endpoint_url=s3_endpoint(), config=config)


def bucket_problem(bucket: str, uri: str) -> str | None:
    """None when the bucket answers; why not, in a few words, when the endpoint does not (worth
    waiting for). Raises StorageError for what waiting cannot fix."""
    import botocore.exceptions  # where used, as in s3_client

    where = s3_place()
    try:
        s3_client().head_bucket(Bucket=bucket)
    except botocore.exceptions.NoCredentialsError:
        raise StorageError(f"{uri}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)") from None
    except botocore.exceptions.ConnectTimeoutError:
        return "no connection within 3 s"
    except botocore.exceptions.ReadTimeoutError:
        return "no reply within 5 s"
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as error:
        return socket_reason(error) or type(error).__name__
    except botocore.exceptions.ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise StorageError(f"{uri}: bucket {bucket!r} does not exist at {where}") from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise StorageError(f"{uri}: access denied by {where} (check the AWS credentials)") from None
        if code in ("500", "502", "503", "504", "SlowDown", "ServiceUnavailable", "InternalError"):
            return f"S3 error {code}"
        raise StorageError(f"{uri}: S3 error {code} from {where}") from None
    return None
