"""One training of a run at a time: the lease in the run's storage folder, the lock on a local run folder."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from gan_core.outputs.run_lock import training_lock
from pipelines import run_lease
from pipelines.faults import is_transient
from pipelines.run_lease import LEASE_FILE, RunBusy, holding_run, read_lease
from pipelines.storage import Storage


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(run_lease, "SETTLE_S", 0.05)
    monkeypatch.setattr(run_lease, "RENEW_S", 0.1)


def _foreign_lease(folder: Storage, renewed_ago: float, host: str = "other-host", pid: int = 4242) -> None:
    now = time.time()
    lease = {"owner": "theirs", "host": host, "pid": pid, "since": now - 600, "renewed": now - renewed_ago}
    folder.write_bytes(LEASE_FILE, json.dumps(lease).encode())


def test_a_second_training_of_a_held_run_is_refused_and_the_lease_goes_when_the_first_ends(tmp_path):
    folder = Storage.from_uri(str(tmp_path / "run"))
    with holding_run(folder, "run digits-v1", log=lambda line: None) as mine:
        with pytest.raises(RunBusy) as refused, holding_run(folder, "run digits-v1"):
            pass
        assert read_lease(folder).owner == mine.owner  # the refused one left the lease alone
    message = str(refused.value)
    assert f"run digits-v1 is in progress in process {os.getpid()} on {socket.gethostname()}" in message
    assert f"which holds {folder.uri}/{LEASE_FILE}" in message
    assert refused.value.exit_code == 75 and not is_transient(refused.value)
    assert read_lease(folder) is None
    with holding_run(folder, "run digits-v1"):  # free again
        pass


def test_a_run_refused_before_it_wrote_anything_leaves_no_folder_and_a_run_with_files_keeps_its_own(tmp_path):
    """A search refused after taking its lease left an empty storage/tune/NAME behind."""
    refused, trained = Storage.from_uri(str(tmp_path / "refused")), Storage.from_uri(str(tmp_path / "trained"))
    with pytest.raises(ValueError), holding_run(refused, "search s1", log=lambda line: None):
        raise ValueError("train.batch_size 5000 exceeds the 1438 training samples")
    with holding_run(trained, "run r1", log=lambda line: None):
        trained.write_bytes("state.pt", b"weights")
    assert not (tmp_path / "refused").exists()
    assert trained.list() == ["state.pt"]


def test_the_holder_renews_its_lease_while_it_holds_it(tmp_path):
    folder = Storage.from_uri(str(tmp_path / "run"))
    with holding_run(folder, "r") as mine:
        time.sleep(0.5)
        renewed = read_lease(folder)
    assert renewed.owner == mine.owner and renewed.renewed > mine.renewed


def test_a_live_lease_elsewhere_is_respected_and_a_stale_one_taken_over(tmp_path):
    folder = Storage.from_uri(str(tmp_path / "run"))
    _foreign_lease(folder, renewed_ago=5)
    with pytest.raises(RunBusy, match="process 4242 on other-host"), holding_run(folder, "r"):
        pass
    _foreign_lease(folder, renewed_ago=run_lease.STALE_S + 1)  # its holder stopped renewing: gone
    said = []
    with holding_run(folder, "r", log=said.append) as mine:
        assert read_lease(folder).owner == mine.owner
    [line] = said
    assert line.startswith("taking over the lease of r from process 4242 on other-host") and line.endswith("is gone")


def test_on_this_machine_a_lease_whose_process_is_gone_is_taken_over_at_once(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = Storage.from_uri(str(tmp_path / "run"))
    _foreign_lease(folder, renewed_ago=1, host=socket.gethostname(), pid=int(finished.stdout))
    with holding_run(folder, "r", log=lambda line: None) as mine:
        assert read_lease(folder).owner == mine.owner


def test_of_two_drivers_starting_together_only_the_last_writer_trains(tmp_path, monkeypatch):
    folder = Storage.from_uri(str(tmp_path / "run"))
    real_sleep = time.sleep

    def rival_writes_meanwhile(seconds):  # the other driver read "free" and writes during our settle
        _foreign_lease(folder, renewed_ago=0)
        real_sleep(seconds)

    monkeypatch.setattr(run_lease.time, "sleep", rival_writes_meanwhile)
    with pytest.raises(RunBusy, match="process 4242 on other-host"), holding_run(folder, "r"):
        pass
    assert read_lease(folder).owner == "theirs"  # the winner's lease stays


def test_a_lease_this_process_failed_to_release_does_not_block_its_retry(tmp_path, monkeypatch):
    folder = Storage.from_uri(str(tmp_path / "run"))
    monkeypatch.setattr(Storage, "delete", lambda self, name: (_ for _ in ()).throw(OSError("storage down")))
    with holding_run(folder, "r"):  # a training attempt that fails while storage is down
        pass
    assert read_lease(folder) is not None  # left behind
    with holding_run(folder, "r", log=lambda line: None) as retry:  # the task's retry, in the same process
        assert read_lease(folder).owner == retry.owner


def test_a_second_local_training_of_a_folder_is_refused_until_the_first_process_ends(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RunBusy, match=f"is in use by process {holder.pid}"), training_lock(tmp_path):
            pass
    finally:
        holder.kill()  # killed, not released: the operating system drops the lock with the process
        holder.wait(timeout=10)
    with training_lock(tmp_path):
        pass


HOLD_THE_LOCK = """
import sys, time
from pathlib import Path
from gan_core.outputs.run_lock import training_lock
with training_lock(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_holder_whose_lease_was_taken_over_stops_renewing_it(tmp_path):
    folder = Storage.from_uri(str(tmp_path / "run"))
    said = []
    with holding_run(folder, "r", log=said.append):
        _foreign_lease(folder, renewed_ago=0)  # as a driver that found ours stale would
        time.sleep(0.5)
        assert read_lease(folder).owner == "theirs"
    assert read_lease(folder).owner == "theirs"  # and leaving does not remove theirs
    assert said[0].startswith("the lease of r was taken over by process 4242 on other-host"), said
