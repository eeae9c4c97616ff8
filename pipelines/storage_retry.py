"""Storage that waits out an outage: a pyarrow filesystem whose every call retries while the
endpoint does not answer.

Ray Train writes checkpoints, and the controller its run state, straight to the filesystem it
is given; one failed call fails the worker or the run. Wrapping the S3 filesystem here covers
all of them: a call that meets an unreachable endpoint (a restart, a network fault, 503 Slow
Down) is tried again, 1 s doubling to 30 s apart, for up to `wait_s`, and says once that
storage does not answer and once that it answers again. Errors that retrying cannot fix (a
missing key, refused credentials) pass through at once.

Whole objects are the unit of retry: a written file is kept in a local spool until it is
closed, then uploaded, so a connection lost half-way through an upload is retried from its
start; a read fetches the whole object, which checkpoints and datasets are read as anyway.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs

from pipelines.faults import first_line, is_transient
from pipelines.waiting import FIRST_RETRY_S, ServiceUnavailable, next_pause

SPOOL_IN_MEMORY_BYTES = 64 * 2**20  # larger uploads wait on local disk

log = logging.getLogger(__name__)
T = TypeVar("T")


class StorageUnavailable(ServiceUnavailable, OSError):
    """Storage did not answer for as long as the caller was willing to wait. An OSError, as
    pyarrow's callers expect of a filesystem; a ServiceUnavailable, so the CLI says it in one line
    and Prefect's task retries may still try the whole step again."""


def retrying(filesystem: pafs.FileSystem, wait_s: float) -> pafs.FileSystem:
    """`filesystem`, with each call retried for up to `wait_s` seconds while it does not answer."""
    return pafs.PyFileSystem(RetryingHandler(filesystem, wait_s))


class RetryingHandler(pafs.FileSystemHandler):
    def __init__(self, inner: pafs.FileSystem, wait_s: float, first_retry_s: float = FIRST_RETRY_S) -> None:
        self.inner, self.wait_s, self.first_retry_s = inner, wait_s, first_retry_s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RetryingHandler) and self.inner.equals(other.inner) and self.wait_s == other.wait_s

    def __hash__(self) -> int:
        return hash((self.inner.type_name, self.wait_s))

    def __reduce__(self):  # Ray sends the filesystem to its workers and controller
        return RetryingHandler, (self.inner, self.wait_s, self.first_retry_s)

    def call(self, what: str, operation: Callable[[], T]) -> T:
        """`operation()`, tried again while the error says storage did not answer."""
        started, pause, failures = time.monotonic(), self.first_retry_s, 0
        while True:
            try:
                result = operation()
            except Exception as error:
                if not is_transient(error):
                    raise
                waited = time.monotonic() - started
                if waited + pause > self.wait_s:
                    raise StorageUnavailable(
                        f"{what}: storage did not answer for {waited:.0f} s ({first_line(error)}); "
                        f"gave up (GANPIPE_STORAGE_WAIT_S={self.wait_s:g})"
                    ) from error
                if failures == 0:
                    log.warning(
                        "%s: storage does not answer (%s); trying again for up to %g s",
                        what,
                        first_line(error),
                        self.wait_s,
                    )
                failures += 1
                time.sleep(pause)
                pause = next_pause(pause)
                continue
            if failures:
                log.warning("%s: storage answers again after %.0f s", what, time.monotonic() - started)
            return result

    # -- the FileSystemHandler interface: each call goes through `call` ----------------------
    def get_type_name(self) -> str:
        return f"retrying-{self.inner.type_name}"

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.call(f"stat {paths[0]}", lambda: self.inner.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.call(f"list {selector.base_dir}", lambda: self.inner.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self.call(f"create {path}", lambda: self.inner.create_dir(path, recursive=recursive))

    def delete_dir(self, path: str) -> None:
        self._delete(path, lambda: self.inner.delete_dir(path))

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.call(f"empty {path}", lambda: self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok))

    def delete_root_dir_contents(self) -> None:
        raise PermissionError("refusing to empty the whole storage root")

    def delete_file(self, path: str) -> None:
        self._delete(path, lambda: self.inner.delete_file(path))

    def move(self, src: str, dest: str) -> None:
        self.call(f"move {src}", lambda: self.inner.move(src, dest))

    def copy_file(self, src: str, dest: str) -> None:
        self.call(f"copy {src}", lambda: self.inner.copy_file(src, dest))

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return pa.BufferReader(self.call(f"read {path}", lambda: self._read_whole(path)))

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

        self.call(f"delete {path}", once)

    def upload(self, path: str, metadata: Any, spool: Any) -> None:
        def once() -> None:
            spool.seek(0)
            with self.inner.open_output_stream(path, compression=None, metadata=metadata) as out:
                while chunk := spool.read(8 * 2**20):
                    out.write(chunk)

        self.call(f"write {path}", once)


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
