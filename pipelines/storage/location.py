"""A storage location by URI, for checkpoints, datasets and small records: a local path,
file://..., or s3://bucket/prefix.

`check()` runs before any training starts: a missing bucket or refused credentials fail at once,
naming the URI and the cause; an endpoint that does not answer is waited for, as the MLflow
server and the Ray cluster are (runtime/waiting.py), for up to GANPIPE_STORAGE_WAIT_S.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from pipelines.runtime.waiting import ServiceUnavailable, wait_until_answers
from pipelines.settings import storage_wait_s
from pipelines.storage.retry import retrying
from pipelines.storage.s3 import StorageError, bucket_problem, s3_filesystem, s3_place


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

    def key(self, name: str) -> str:
        """The S3 key of `name` here."""
        return f"{self.prefix}/{name}".strip("/")

    # -- what Ray Train wants: a pyarrow filesystem and a path on it ------------------------
    def pyarrow(self) -> tuple[pafs.FileSystem, str]:
        if self.scheme == "file":
            return pafs.LocalFileSystem(), self.prefix
        # Every call waits out an S3 outage (storage/retry.py); check() still fails fast.
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
