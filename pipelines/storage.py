"""One storage layer for checkpoints and datasets: a local path, file://..., or s3://bucket/prefix.

The S3 endpoint (MinIO, moto, any S3-compatible server), region and credentials come from
the standard AWS variables (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, ...);
none of them is ever logged. `check()` runs before any training starts: a missing bucket or
refused credentials fail at once, naming the URI and the cause; an endpoint that does not answer
is waited for, as the MLflow server and the Ray cluster are (waiting.py), for up to
GANPIPE_STORAGE_WAIT_S.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from pipelines.settings import storage_wait_s
from pipelines.storage_retry import retrying
from pipelines.waiting import ServiceUnavailable, socket_reason, wait_until_answers


class StorageError(RuntimeError):
    """Storage is unusable; the message names the URI and the cause.

    `transient` marks causes that may pass on their own (an endpoint that does not answer),
    as opposed to a missing bucket or refused credentials, which retrying cannot fix.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class StorageUnreachable(StorageError, ServiceUnavailable):
    """The S3 endpoint did not answer for as long as GANPIPE_STORAGE_WAIT_S allows."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


@dataclass(frozen=True)
class Storage:
    uri: str
    scheme: str  # "file" or "s3"
    bucket: str  # s3 only
    prefix: str  # s3: key prefix; file: absolute folder

    @classmethod
    def from_uri(cls, uri: str) -> Storage:
        parsed = urlparse(uri)
        if parsed.scheme == "s3":
            if len(parsed.netloc) < 3:
                raise StorageError(f"{uri}: an S3 URI needs a bucket name of 3+ characters (s3://bucket/prefix)")
            return cls(uri, "s3", parsed.netloc, parsed.path.strip("/"))
        if parsed.scheme in ("", "file"):
            path = parsed.path if parsed.scheme == "file" else uri
            return cls(uri, "file", "", str(Path(path).expanduser().resolve()))
        raise StorageError(
            f"{uri}: unsupported storage scheme {parsed.scheme!r}; use a path, file://... or s3://bucket/prefix"
        )

    def child(self, *parts: str) -> Storage:
        suffix = "/".join(p.strip("/") for p in parts)
        if self.scheme == "s3":
            prefix = f"{self.prefix}/{suffix}".strip("/")
            return Storage(f"s3://{self.bucket}/{prefix}", "s3", self.bucket, prefix)
        path = str(Path(self.prefix, *parts))
        return Storage(path, "file", "", path)

    # -- what Ray Train wants: a pyarrow filesystem and a path on it ------------------------
    def pyarrow(self) -> tuple[pafs.FileSystem, str]:
        if self.scheme == "file":
            return pafs.LocalFileSystem(), self.prefix
        # Every call waits out an S3 outage (storage_retry.py); check() still fails fast.
        return retrying(s3_filesystem(), storage_wait_s()), f"{self.bucket}/{self.prefix}".rstrip("/")

    # -- small objects (manifests, markers) -------------------------------------------------
    def write_bytes(self, name: str, data: bytes) -> None:
        fs, root = self.pyarrow()
        if self.scheme == "file":
            fs.create_dir(root, recursive=True)
        with fs.open_output_stream(f"{root}/{name}") as out:
            out.write(data)

    def read_bytes(self, name: str) -> bytes:
        fs, root = self.pyarrow()
        with fs.open_input_stream(f"{root}/{name}") as stream:
            return stream.read()

    def delete(self, name: str) -> None:
        fs, root = self.pyarrow()
        fs.delete_file(f"{root}/{name}")

    def remove_if_empty(self) -> None:
        """Remove this location's folder if nothing is in it (S3 has no folders to leave behind)."""
        if self.scheme == "file":
            with contextlib.suppress(OSError):  # not empty, or already gone
                Path(self.prefix).rmdir()

    def exists(self, name: str) -> bool:
        fs, root = self.pyarrow()
        return fs.get_file_info(f"{root}/{name}").type == pafs.FileType.File

    def list(self, subpath: str = "") -> list[str]:
        """Every object (file) under this location, as paths relative to it."""
        fs, root = self.pyarrow()
        base = f"{root}/{subpath}".rstrip("/")
        info = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return sorted(i.path[len(root) + 1 :] for i in info if i.type == pafs.FileType.File)

    def check(self, log: Callable[[str], None] = print, wait_s: float | None = None) -> None:
        """Raise StorageError unless this location is usable: a folder that can be written, or a
        bucket that exists and accepts the credentials. An S3 endpoint that does not answer is
        asked again for up to `wait_s` seconds (default GANPIPE_STORAGE_WAIT_S), saying so."""
        if self.scheme == "file":
            try:
                Path(self.prefix).mkdir(parents=True, exist_ok=True)
                probe = Path(self.prefix) / ".ganpipe-write-check"
                probe.write_bytes(b"ok")
                probe.unlink()
            except OSError as error:
                raise StorageError(f"{self.uri}: cannot write there ({error.strerror or error})") from None
            return
        wait_until_answers(
            f"{self.uri}: S3 {s3_place()}",
            lambda: bucket_problem(self.bucket, self.uri),
            storage_wait_s() if wait_s is None else wait_s,
            "GANPIPE_STORAGE_WAIT_S",
            log,
            StorageUnreachable,
        )


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_place() -> str:
    """Where S3 requests go, for messages: the endpoint's URL, or AWS itself."""
    return f"endpoint {s3_endpoint()}" if s3_endpoint() else "AWS S3"


def s3_filesystem() -> pafs.S3FileSystem:
    endpoint = s3_endpoint()
    options: dict[str, object] = {
        "region": os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        # Uploads run in the caller's thread: the retrying wrapper uploads from inside copy_files'
        # thread pool, where background writes would queue behind the threads waiting for them.
        "background_writes": False,
    }
    if endpoint:
        parsed = urlparse(endpoint)
        options.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:  # explicit, so that Ray workers on other nodes receive them with the filesystem
        options.update(access_key=key, secret_key=secret, session_token=os.environ.get("AWS_SESSION_TOKEN"))
    return pafs.S3FileSystem(**options)


def bucket_problem(bucket: str, uri: str) -> str | None:
    """None when the bucket answers; why not, in a few words, when the endpoint does not (worth
    waiting for). Raises StorageError for what waiting cannot fix."""
    import boto3
    import botocore.config
    import botocore.exceptions

    # One request per probe: the wait loop does the retrying, on its own schedule.
    config = botocore.config.Config(connect_timeout=3, read_timeout=5, retries={"total_max_attempts": 1})
    client = boto3.client("s3", endpoint_url=s3_endpoint(), config=config)
    where = s3_place()
    try:
        client.head_bucket(Bucket=bucket)
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
