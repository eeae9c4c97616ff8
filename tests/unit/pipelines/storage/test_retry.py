"""The retrying storage filesystem, over a local folder whose calls fail on demand like S3's while
its probe says that storage does not answer."""

from __future__ import annotations

import gzip
import logging
import pickle
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from pipelines.settings import STORAGE_WAIT_S, storage_wait_s
from pipelines.storage.retry import RetryingHandler, StorageUnavailable, s3_answers

UNREACHABLE = "AWS Error NETWORK_CONNECTION during PutObject operation: curlCode: 7, Could not connect to server"


class FlakyHandler(pafs.FileSystemHandler):
    """A local folder behind pyarrow's handler interface; the next `failures` calls raise what
    pyarrow's S3 client raises when the endpoint is down (or `error`, when set)."""

    def __init__(self, root: Path) -> None:
        self.fs = pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem())
        self.down_until, self.calls, self.error = 0.0, 0, None
        self.lose_next_delete_answer = False
        self.uploads_cut_at_the_end = 0

    def cut(self, seconds: float) -> None:
        """An outage: for `seconds`, every call fails and the probe says storage does not answer."""
        self.down_until = time.monotonic() + seconds

    def probe(self, path: str) -> str | None:
        return "connection refused" if time.monotonic() < self.down_until else None

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        if self.probe("") is not None:
            raise OSError(UNREACHABLE)

    def get_type_name(self):
        return "flaky"

    def normalize_path(self, path):
        return path

    def get_file_info(self, paths):
        self._maybe_fail()
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        self._maybe_fail()
        return self.fs.get_file_info(selector)

    def create_dir(self, path, recursive):
        self._maybe_fail()
        self.fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self._maybe_fail()
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self._maybe_fail()
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise NotImplementedError

    def delete_file(self, path):
        self._maybe_fail()
        self.fs.delete_file(path)
        if self.lose_next_delete_answer:  # deleted, but the answer never came back: a blip
            self.lose_next_delete_answer = False
            self.cut(0.02)
            raise OSError(UNREACHABLE)

    def move(self, src, dest):
        self._maybe_fail()
        self.fs.move(src, dest)

    def copy_file(self, src, dest):
        self._maybe_fail()
        self.fs.copy_file(src, dest)

    def open_input_stream(self, path):
        self._maybe_fail()
        return self.fs.open_input_stream(path, compression=None)

    def open_input_file(self, path):
        self._maybe_fail()
        return self.fs.open_input_file(path)

    def open_output_stream(self, path, metadata):
        self._maybe_fail()
        self.fs.create_dir(path.rpartition("/")[0], recursive=True)  # S3 has no folders to make first
        return pa.PythonFile(_FailsOnClose(self, self.fs.open_output_stream(path, compression=None)), mode="w")

    def open_append_stream(self, path, metadata):
        raise NotImplementedError


class _FailsOnClose:
    """An upload that may lose its connection at the end, after every byte was written."""

    def __init__(self, handler: FlakyHandler, out) -> None:
        self.handler, self.out = handler, out

    def __getattr__(self, name):
        return getattr(self.out, name)

    def close(self):
        self.out.close()
        if self.handler.uploads_cut_at_the_end > 0:  # a blip at the end of the upload
            self.handler.uploads_cut_at_the_end -= 1
            self.handler.cut(0.02)
            raise OSError(UNREACHABLE)


def _flaky(tmp_path: Path, wait_s: float = 60.0) -> tuple[pafs.FileSystem, FlakyHandler, RetryingHandler]:
    flaky = FlakyHandler(tmp_path)
    handler = RetryingHandler(pafs.PyFileSystem(flaky), wait_s, probe=flaky.probe, first_retry_s=0.01)
    return pafs.PyFileSystem(handler), flaky, handler


def test_calls_are_tried_again_until_storage_answers(tmp_path: Path, caplog):
    fs, flaky, _ = _flaky(tmp_path)
    (tmp_path / "a.txt").write_bytes(b"abc")
    flaky.cut(0.1)
    with caplog.at_level(logging.WARNING, logger="pipelines.storage.retry"):
        assert fs.get_file_info("a.txt").size == 3
    assert flaky.calls == 2  # the call, and once more when storage answers again
    [down, back] = caplog.messages  # one line when the outage starts, one when it ends
    assert "a.txt: S3" in down and "does not answer (connection refused)" in down and "answers after" in back
    flaky.cut(0.1)
    with fs.open_input_stream("a.txt") as stream:
        assert stream.read() == b"abc"
    flaky.cut(0.05)
    fs.create_dir("d/e")
    assert (tmp_path / "d" / "e").is_dir()


def test_an_upload_that_fails_is_sent_again_whole(tmp_path: Path):
    fs, flaky, _ = _flaky(tmp_path)
    payload = bytes(range(256)) * 40_000  # 10 MB, written in pieces as Ray's copy does
    flaky.uploads_cut_at_the_end = 2  # two attempts lose their connection after the last byte
    with fs.open_output_stream("ckpt/state.pt") as out:
        for start in range(0, len(payload), 1_000_000):
            out.write(payload[start : start + 1_000_000])
    assert (tmp_path / "ckpt" / "state.pt").read_bytes() == payload
    assert flaky.uploads_cut_at_the_end == 0 and flaky.calls == 3


def test_copy_files_to_and_from_it_survives_an_outage(tmp_path: Path):
    source, remote, back = tmp_path / "source", tmp_path / "remote", tmp_path / "back"
    for folder in (source, remote, back):
        folder.mkdir()
    (source / "state.pt").write_bytes(b"x" * 100_000)
    (source / "notes.gz").write_bytes(gzip.compress(b"hello"))
    fs, flaky, _ = _flaky(remote)
    flaky.cut(0.1)
    pafs.copy_files(str(source), "ckpt", source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    flaky.cut(0.1)
    pafs.copy_files("ckpt", str(back), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    for name in ("state.pt", "notes.gz"):  # compressed files travel as they are, not unpacked
        assert (back / name).read_bytes() == (source / name).read_bytes()


def test_it_gives_up_after_its_wait_naming_the_path_and_the_setting(tmp_path: Path):
    fs, flaky, _ = _flaky(tmp_path, wait_s=0.05)
    flaky.cut(1000)
    with pytest.raises(StorageUnavailable, match=r"stat missing.txt: .* does not answer .*GANPIPE_STORAGE_WAIT_S"):
        fs.get_file_info("missing.txt")
    assert flaky.calls == 1  # not tried again: storage never answered within the wait


def test_errors_that_retrying_cannot_fix_pass_at_once(tmp_path: Path):
    fs, flaky, _ = _flaky(tmp_path)
    with pytest.raises(FileNotFoundError):
        fs.open_input_stream("nothing-here")
    assert flaky.calls == 1
    flaky.error = OSError("AWS Error ACCESS_DENIED during HeadObject operation: Access Denied")
    with pytest.raises(OSError, match="ACCESS_DENIED"):  # storage answers (the probe says so): real
        fs.get_file_info("a.txt")
    assert flaky.calls == 2


def test_a_delete_whose_answer_was_lost_counts_as_done(tmp_path: Path):
    fs, flaky, _ = _flaky(tmp_path)
    (tmp_path / "old.pt").write_bytes(b"1")
    flaky.lose_next_delete_answer = True
    fs.delete_file("old.pt")  # the retry finds nothing to delete: done, not FileNotFoundError
    assert not (tmp_path / "old.pt").exists()
    with pytest.raises(FileNotFoundError):  # a delete of what was never there still says so
        fs.delete_file("old.pt")


def test_it_travels_to_ray_workers_with_its_wait(tmp_path: Path):
    fs, _, handler = _flaky(tmp_path, wait_s=42.0)
    handler.probe = s3_answers  # a bound method of the test's handler is not what travels
    copy = pickle.loads(pickle.dumps(handler))
    assert copy.wait_s == 42.0 and copy.first_retry_s == handler.first_retry_s and copy.probe is s3_answers
    assert fs.type_name == "py::retrying-py::flaky"


def test_the_wait_is_a_setting_in_seconds():
    assert storage_wait_s({}) == STORAGE_WAIT_S
    assert storage_wait_s({"GANPIPE_STORAGE_WAIT_S": "90"}) == 90.0
    with pytest.raises(ValueError, match=r"GANPIPE_STORAGE_WAIT_S='soon' is not allowed: a number of seconds >= 0"):
        storage_wait_s({"GANPIPE_STORAGE_WAIT_S": "soon"})


def test_an_endpoint_that_accepts_but_never_answers_counts_as_down(monkeypatch):
    """A network that drops replies: the S3 client's timeouts end each try, the probe finds no
    reply either, and the call gives up after its wait instead of hanging."""
    import socket

    from pipelines.storage import s3
    from pipelines.storage.location import Storage

    # One request may take a minute in production (a checkpoint part going up); three SDK tries
    # of that against a silent port would hold this test for three minutes.
    monkeypatch.setattr(s3, "REQUEST_TIMEOUT_S", 1.0)

    with socket.socket() as silent:  # the OS accepts connections for it; nothing ever replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("GANPIPE_STORAGE_WAIT_S", "0")
        fs, root = Storage.from_uri("s3://silent-bucket/runs").pyarrow()
        with pytest.raises(StorageUnavailable, match=r"does not answer \(no reply within 5 s\).*WAIT_S=0"):
            fs.get_file_info(f"{root}/checkpoint/state.pt")
