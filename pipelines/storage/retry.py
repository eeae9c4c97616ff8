"""Storage that waits out an outage: a pyarrow filesystem whose calls wait while S3 does not answer.

Ray Train writes checkpoints, and its controller the run's state, straight to the filesystem it
is given; one failed call fails the worker or the run. pyarrow's own retry strategy (s3.py)
rides out a blip of a second or two. Past that, a call that failed with an OSError that is not
a permanent kind (a missing key, refused permission) asks whether the bucket answers: if it
does, the error is real and passes through; if not, the call waits for it on the project's
schedule (runtime/waiting.py: one line when the wait starts, one when it ends) for up to
GANPIPE_STORAGE_WAIT_S, then runs again. Whole objects are the unit of retry: a written file
is spooled until it is closed, then uploaded, so an upload cut half-way starts over.

Checked: `pyarrow.fs.S3FileSystem(retry_strategy=...)` offers the AWS SDK's strategies only,
capped by its retry quota and silent; Ray Train has no storage retries of its own (a failed
checkpoint upload fails the worker). This wrapper is what a minutes-long outage needs on top.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs

from pipelines.runtime.waiting import FIRST_RETRY_S, ServiceUnavailable, wait_until_answers
from pipelines.storage.s3 import bucket_problem, s3_place

SPOOL_IN_MEMORY_BYTES = 64 * 2**20  # larger uploads wait on local disk
# OSErrors that say something about the object, not about whether S3 answers.
PERMANENT_OS_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)

log = logging.getLogger(__name__)
T = TypeVar("T")


class StorageUnavailable(ServiceUnavailable, OSError):
    """Storage did not answer for as long as the caller was willing to wait. An OSError, as
    pyarrow's callers expect of a filesystem; a ServiceUnavailable, so the CLI says it in one
    line and Prefect's task retries may still try the whole step again."""


def retrying(filesystem: pafs.S3FileSystem, wait_s: float) -> pafs.FileSystem:
    """`filesystem`, each of whose calls waits up to `wait_s` seconds for S3 to answer again."""
    return pafs.PyFileSystem(RetryingHandler(filesystem, wait_s))


def s3_answers(path: str) -> str | None:
    """None when the bucket of `path` (bucket/key) answers; else why not, in a few words."""
    return bucket_problem(path.split("/", 1)[0], f"s3://{path}")


class RetryingHandler(pafs.FileSystemHandler):
    """`inner`'s calls, each waiting for up to `wait_s` while `probe(path)` says storage does not
    answer (a reason; None once it answers), asking again FIRST_RETRY_S doubling to 30 s apart."""

    def __init__(
        self,
        inner: pafs.FileSystem,
        wait_s: float,
        probe: Callable[[str], str | None] = s3_answers,
        first_retry_s: float = FIRST_RETRY_S,
    ) -> None:
        self.inner, self.wait_s, self.probe, self.first_retry_s = inner, wait_s, probe, first_retry_s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RetryingHandler) and self.inner.equals(other.inner) and self.wait_s == other.wait_s

    def __hash__(self) -> int:
        return hash((self.inner.type_name, self.wait_s))

    def __reduce__(self):  # Ray sends the filesystem to its workers and controller
        return RetryingHandler, (self.inner, self.wait_s, self.probe, self.first_retry_s)

    def call(self, what: str, path: str, operation: Callable[[], T]) -> T:
        """`operation()`, run again once S3 answers, while the error was S3 not answering."""
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                return operation()
            except PERMANENT_OS_ERRORS:
                raise
            except OSError:
                if self.probe(path) is None:  # storage answers: the error is real
                    raise
                wait_until_answers(
                    f"{what} {path}: S3 {s3_place()}",
                    lambda: self.probe(path),
                    max(0.0, deadline - time.monotonic()),
                    "GANPIPE_STORAGE_WAIT_S",
                    log.warning,
                    StorageUnavailable,
                    first_retry_s=self.first_retry_s,
                )

    # -- the FileSystemHandler interface: each call goes through `call` ----------------------
    def get_type_name(self) -> str:
        return f"retrying-{self.inner.type_name}"

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.call("stat", paths[0], lambda: self.inner.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.call("list", selector.base_dir, lambda: self.inner.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self.call("create", path, lambda: self.inner.create_dir(path, recursive=recursive))

    def delete_dir(self, path: str) -> None:
        self._delete(path, lambda: self.inner.delete_dir(path))

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.call("empty", path, lambda: self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok))

    def delete_root_dir_contents(self) -> None:
        raise PermissionError("refusing to empty the whole storage root")

    def delete_file(self, path: str) -> None:
        self._delete(path, lambda: self.inner.delete_file(path))

    def move(self, src: str, dest: str) -> None:
        self.call("move", src, lambda: self.inner.move(src, dest))

    def copy_file(self, src: str, dest: str) -> None:
        self.call("copy", src, lambda: self.inner.copy_file(src, dest))

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return pa.BufferReader(self.call("read", path, lambda: self._read_whole(path)))

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.open_input_stream(path)

    def open_output_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        return pa.PythonFile(_UploadOnClose(self, path, metadata), mode="w")

    def open_append_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        raise NotImplementedError("object storage cannot append to an object")

    # -- helpers ----------------------------------------------------------------------------
    def _read_whole(self, path: str) -> pa.Buffer:
        with self.inner.open_input_stream(path, compression=None) as stream:  # the caller's fs decompresses
            return stream.read_buffer()

    def _delete(self, path: str, delete: Callable[[], None]) -> None:
        # A delete whose answer was lost may have happened: finding nothing afterwards is success.
        attempts = 0

        def once() -> None:
            nonlocal attempts
            attempts += 1
            try:
                delete()
            except FileNotFoundError:
                if attempts == 1:
                    raise

        self.call("delete", path, once)

    def upload(self, path: str, metadata: Any, spool: Any) -> None:
        def once() -> None:
            spool.seek(0)
            with self.inner.open_output_stream(path, compression=None, metadata=metadata) as out:
                while chunk := spool.read(8 * 2**20):
                    out.write(chunk)

        self.call("write", path, once)


class _UploadOnClose:
    """A write-only file that keeps what it is given and uploads it, with retries, on close."""

    def __init__(self, handler: RetryingHandler, path: str, metadata: Any) -> None:
        self.handler, self.path, self.metadata = handler, path, metadata
        self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115 - closed in close()
        self.closed = False

    def write(self, data: bytes) -> int:
        return self.spool.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.handler.upload(self.path, self.metadata, self.spool)
        finally:
            self.spool.close()
