"""One holder at a time: a lease in S3 (conditional writes, against a real S3 endpoint: moto's
server) and in a local folder (an OS lock)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from gan_core.outputs.run_lock import RunBusy
from pipelines.runtime.faults import is_transient
from pipelines.storage.lease import LEASE_FILE, LeaseTiming, holding
from pipelines.storage.location import Storage

QUICK = LeaseTiming(renew_s=0.2, stale_s=1.5, poll_s=0.05)


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def bucket(s3_endpoint, monkeypatch, tmp_path) -> Storage:
    import boto3

    for name, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    name = f"lease-{tmp_path.name.lower().replace('_', '-')}"[:60]
    boto3.client("s3").create_bucket(Bucket=name)
    return Storage.from_uri(f"s3://{name}/runs/r1")


def _read(folder: Storage) -> dict | None:
    return json.loads(folder.read_bytes(LEASE_FILE)) if folder.exists(LEASE_FILE) else None


def _foreign(folder: Storage, renewed_ago: float, host: str = "other-host", pid: int = 4242) -> None:
    now = time.time()
    lease = {"owner": "theirs", "host": host, "pid": pid, "since": now - 600, "renewed": now - renewed_ago}
    folder.write_bytes(LEASE_FILE, json.dumps(lease).encode())


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path) -> Storage:
    return Storage.from_uri(str(tmp_path / "run")) if request.param == "local" else request.getfixturevalue("bucket")


def test_of_many_takers_racing_exactly_one_holds_the_lease(folder):
    holders, refused, start = [], [], threading.Barrier(8)

    def take() -> None:
        start.wait()
        try:
            with holding(folder, "run r1", log=lambda line: None, timing=QUICK):
                holders.append(threading.get_ident())
                deadline = time.monotonic() + 30
                while len(refused) < 7 and time.monotonic() < deadline:  # every other taker tries meanwhile
                    time.sleep(0.05)
        except RunBusy:
            refused.append(threading.get_ident())

    takers = [threading.Thread(target=take) for _ in range(8)]
    for taker in takers:
        taker.start()
    for taker in takers:
        taker.join(timeout=60)
    assert len(holders) == 1 and len(refused) == 7
    assert _read(folder) is None  # released: the next one takes it at once
    with holding(folder, "run r1", timing=QUICK):
        pass


def test_a_refusal_names_the_holder_and_is_worth_waiting_for_not_retrying(folder):
    with holding(folder, "run r1", log=lambda line: None, timing=QUICK) as mine:
        with pytest.raises(RunBusy) as refused, holding(folder, "run r1", timing=QUICK):
            pass
        assert _read(folder)["owner"] == mine.owner  # the refused one left the lease alone
    assert f"run r1 is in progress in process {os.getpid()} on {socket.gethostname()}" in str(refused.value)
    assert LEASE_FILE in str(refused.value)
    assert refused.value.exit_code == 75 and not is_transient(refused.value)


def test_the_holder_renews_past_the_stale_time_while_a_second_waits_then_takes_it(bucket):
    said, order = [], []

    def second() -> None:
        with holding(bucket, "run r1", log=said.append, timing=LeaseTiming(0.2, 1.5, wait_s=20, poll_s=0.1)):
            order.append("second")

    with holding(bucket, "run r1", timing=QUICK) as first:
        waiting = threading.Thread(target=second)
        waiting.start()
        time.sleep(3 * QUICK.stale_s)  # twice past the stale time: renewed all along, so still ours
        assert _read(bucket)["owner"] == first.owner and _read(bucket)["renewed"] > first.renewed
        order.append("first")
    waiting.join(timeout=20)
    assert order == ["first", "second"] and not said  # taken when released, not taken over


def test_a_stale_s3_lease_is_taken_over_and_a_live_one_elsewhere_respected(bucket):
    _foreign(bucket, renewed_ago=0.1)
    with pytest.raises(RunBusy, match="process 4242 on other-host"), holding(bucket, "r", timing=QUICK):
        pass
    _foreign(bucket, renewed_ago=QUICK.stale_s + 1)  # its holder stopped renewing: gone
    said = []
    with holding(bucket, "r", log=said.append, timing=QUICK) as mine:
        assert _read(bucket)["owner"] == mine.owner
    [line] = said
    assert line.startswith("taking over the lease of r from process 4242 on other-host") and line.endswith("is gone")


def test_on_this_machine_an_s3_lease_whose_process_is_gone_is_taken_over_at_once(bucket):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _foreign(bucket, renewed_ago=0.1, host=socket.gethostname(), pid=int(finished.stdout))
    with holding(bucket, "r", log=lambda line: None, timing=QUICK) as mine:
        assert _read(bucket)["owner"] == mine.owner


def test_a_holder_whose_s3_lease_was_taken_over_stops_renewing_and_leaves_the_new_one(bucket):
    said = []
    with holding(bucket, "r", log=said.append, timing=QUICK):
        _foreign(bucket, renewed_ago=0)  # as a driver that found ours stale would
        time.sleep(3 * QUICK.renew_s)
        assert _read(bucket)["owner"] == "theirs"
    assert _read(bucket)["owner"] == "theirs"  # and leaving does not remove theirs
    assert said[0].startswith("the lease of r was taken over by another process"), said


def test_a_local_lease_is_free_once_its_holder_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    folder = Storage.from_uri(str(tmp_path / "run"))
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RunBusy, match=f"in process {holder.pid}"), holding(folder, "run r1"):
            pass
    finally:
        holder.kill()  # killed, not released: the OS drops the lock with the process
        holder.wait(timeout=10)
    with holding(folder, "run r1"):
        pass


HOLD = """
import sys, time
from pipelines.storage.lease import holding
from pipelines.storage.location import Storage
with holding(Storage.from_uri(sys.argv[1]), "run r1"):
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_run_refused_before_it_wrote_anything_leaves_no_folder_and_a_run_with_files_keeps_its_own(tmp_path):
    """A search refused after taking its lease left an empty storage/tune/NAME behind."""
    refused, trained = Storage.from_uri(str(tmp_path / "refused")), Storage.from_uri(str(tmp_path / "trained"))
    with pytest.raises(ValueError), holding(refused, "search s1", log=lambda line: None):
        raise ValueError("train.batch_size 5000 exceeds the 1438 training samples")
    with holding(trained, "run r1", log=lambda line: None):
        trained.write_bytes("state.pt", b"weights")
    assert not (tmp_path / "refused").exists()
    assert trained.list() == ["state.pt"]
