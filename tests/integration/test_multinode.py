"""A Ray cluster of several nodes on one machine (Ray's own `ray.cluster_utils.Cluster`: one raylet
per node): a head without CPUs, where the drivers and Ray Train's controller run, and worker nodes
of 1 CPU, each with its own GANPIPE_HOME, as separate machines would have. Every node shares only
moto's S3 (the prepared dataset, checkpoints, Tune's state) and the MLflow server. `ganpipe` runs
as a command with RAY_ADDRESS set, as against a real cluster.

The cluster lives in a child process (`serve_cluster`, the `__main__` below) that the tests drive
over pipes. Made in the pytest process, its shutdown would reset Ray's internal KV client there,
which the session's in-process Ray (the `ray_cluster` fixture) goes on using.
"""

from __future__ import annotations

import csv
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import BUCKET, bucket_keys
from tests.integration.services import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PREFIX = "multinode"  # the tests' storage in the bucket
EXPERIMENT = "multinode"
N_TRAIN = 5000
# Short evaluations, no sample pictures: the smallest runs that still show the point.
SMALL = [f"data.n_train={N_TRAIN}", "train.sample_every=100000", "eval.n_samples=500"]

# Rank 0's progress lines and Ray Train's list of the worker group it started, as Ray forwards them.
STEP = re.compile(r"\bstep (\d+)/\d+ ")
RESUMING = re.compile(r"\bresuming at step (\d+): ")
RANK_1 = re.compile(r"\bpid=(\d+)\) world_rank=1,")


class RayNodes:
    """The tests' handle on the cluster process: add and remove worker nodes, ask Ray's state API."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "cluster.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.test_multinode", str(root)],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
                start_new_session=True,  # with its raylets: one process group to kill if it hangs
            )
        ready = self._answer()
        self.address, self.head = ready["address"], ready["head"]
        self.workers: dict[str, Path] = {}  # worker node id -> the node's GANPIPE_HOME

    def _ask(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the cluster process ended ({self.process.wait()}):\n{self.log.read_text()[-3000:]}")
        return json.loads(line)

    def add(self) -> str:
        answer = self._ask(do="add")
        self.workers[answer["node"]] = Path(answer["home"])
        return answer["node"]

    def remove(self, node: str) -> None:
        """Kill the node's raylet and every process on it at once, as when a machine goes away."""
        self._ask(do="remove", node=node)
        del self.workers[node]

    def with_workers(self, count: int) -> list[str]:
        """Exactly `count` worker nodes, adding or removing nodes as needed; their ids."""
        while len(self.workers) > count:
            self.remove(next(iter(self.workers)))
        while len(self.workers) < count:
            self.add()
        return list(self.workers)

    def actors(self, class_name: str) -> list[dict]:
        """Every actor of `class_name` the cluster has run, alive or dead: id, node, pid, state."""
        return self._ask(do="actors", class_name=class_name)["actors"]

    def close(self) -> None:
        self.process.stdin.close()  # the cluster process shuts the cluster down and ends
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def serve_cluster(root: Path) -> None:
    """The cluster process: start the head, then answer one JSON request per line on stdin with one
    line on stdout; shut the cluster down when stdin closes."""
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.state import list_actors

    def answer(**values) -> None:
        print(json.dumps(values), flush=True)

    # Ray Train's placement-group cleaner asks the state API whether its controller lives; with no
    # address, Ray picks the newest Ray instance on the machine, which may be another one (the
    # session's local cluster), and the run's placement group would be removed under it. So every
    # process of this cluster inherits the cluster's own address.
    port = free_port()
    os.environ["RAY_ADDRESS"] = f"{ray.util.get_node_ip_address()}:{port}"
    os.environ["GANPIPE_HOME"] = str(root / "head")
    head = {"num_cpus": 0, "gcs_server_port": port, "include_dashboard": True, "dashboard_port": free_port()}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    nodes = {}
    answer(address=cluster.address, head=cluster.head_node.node_id)
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request["do"] == "add":
                home = root / f"node-{len(list(root.glob('node-*')))}"
                home.mkdir()
                os.environ["GANPIPE_HOME"] = str(home)  # the node's raylet, and so its workers, inherit it
                node = cluster.add_node(num_cpus=1)
                nodes[node.node_id] = node
                answer(node=node.node_id, home=str(home))
            elif request["do"] == "remove":
                cluster.remove_node(nodes.pop(request["node"]), allow_graceful=False)
                answer()
            elif request["do"] == "actors":
                found = list_actors(
                    address=cluster.address, filters=[("class_name", "=", request["class_name"])], limit=10_000,
                    detail=True, raise_on_missing_output=False,
                )  # fmt: skip
                answer(actors=[{"id": a.actor_id, "node": a.node_id, "pid": a.pid, "state": a.state} for a in found])
    finally:
        for node in list(nodes.values()):
            cluster.remove_node(node, allow_graceful=False)
        cluster.shutdown()


@pytest.fixture(scope="module")
def nodes(s3: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayNodes]:
    """One cluster for the module; each test asks for the worker nodes it needs. Started after the
    S3 fixture, so that every node's processes inherit its AWS_* settings."""
    cluster = RayNodes(tmp_path_factory.mktemp("nodes"))
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def dataset_root(s3: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A prepared ring dataset in the bucket, which every node fetches from there."""
    from pipelines.storage.datasets import publish, read_source
    from pipelines.storage.location import Storage

    dataset, origin = read_source("ring", "", N_TRAIN, 0, tmp_path_factory.mktemp("scratch"))
    return publish(dataset, Storage.from_uri(f"s3://{BUCKET}/{PREFIX}"), origin).uri


@pytest.fixture()
def env(nodes: RayNodes, mlflow_url: str, tmp_path: Path) -> dict[str, str]:
    """The command's environment: the cluster, the shared storage and MLflow, the driver's own home."""
    return {
        **os.environ,
        "RAY_ADDRESS": nodes.address,
        "GANPIPE_HOME": str(tmp_path / "driver"),
        "GANPIPE_STORAGE": f"s3://{BUCKET}/{PREFIX}",
        "MLFLOW_TRACKING_URI": mlflow_url,
        "GANPIPE_EXPERIMENT": EXPERIMENT,
    }


def _command(verb: str, preset: str, name: str, dataset_root: str, settings: list[str], *more: str) -> list[str]:
    overrides = [*SMALL, "data.name=prepared", f"data.root={dataset_root}", *settings]
    command = [sys.executable, "-m", "pipelines.cli", verb, "--preset", preset, "--name", name, *more]
    return command + [f"--set={setting}" for setting in overrides]


def _mlflow_runs(mlflow_url: str, name: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_url)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    return client, client.search_runs([experiment], f"attributes.run_name = '{name}'")


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def _has_dataset(home: Path) -> bool:
    """Whether a node fetched the prepared dataset into its own cache."""
    return any((home / "cache" / "datasets" / "ring").glob("*/manifest.json"))


def test_two_workers_one_per_node_survive_the_loss_of_a_node_and_end_in_step(nodes, dataset_root, env, mlflow_url):
    """`ganpipe train --workers 2`, one worker on each of two nodes. Once the run has a checkpoint in
    the bucket, the node holding rank 1 goes away (its raylet and workers killed at once) and a new
    node joins: Ray Train starts both workers again, which resume from that checkpoint, in the same
    command and the same MLflow run, and end with the ranks in step."""
    from pipelines.storage.location import Storage
    from pipelines.train.trainer import steps_trained

    steps, every = 250, 100
    first = nodes.with_workers(2)
    earlier = {a["id"] for a in nodes.actors("RayTrainWorker")}
    settings = [f"train.steps={steps}", "train.log_every=1", f"train.checkpoint_every={every}"]
    command = _command("train", "ring", "node-loss", dataset_root, settings, "--workers", "2")
    run = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines, seen = _lines_of(run), []
    rank1_pid = placed = lost = added = None
    reached = resumed_at = None  # the last step rank 0 finished before the loss; the step it resumed at
    asked = 0.0
    deadline = time.monotonic() + 300
    try:
        while (line := _next(lines, deadline, seen)) is not None:
            seen.append(line)
            if lost is None:
                if match := RANK_1.search(line):
                    rank1_pid = int(match.group(1))
                if (match := STEP.search(line)) and rank1_pid:
                    reached = int(match.group(1))
                    if time.monotonic() - asked > 0.5:  # S3 at most twice a second
                        asked = time.monotonic()
                        if _checkpoint_stored("node-loss"):
                            placed = [a for a in nodes.actors("RayTrainWorker") if a["id"] not in earlier]
                            [rank1] = [a for a in placed if a["pid"] == rank1_pid]
                            nodes.remove(rank1["node"])
                            lost, added = rank1["node"], nodes.add()
            elif match := RESUMING.search(line):
                assert resumed_at is None, "".join(seen)[-3000:]  # one restart
                resumed_at = int(match.group(1))
            elif resumed_at is None and (match := STEP.search(line)):
                reached = max(reached, int(match.group(1)))  # forwarded after the node was gone
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    out = "".join(seen)
    assert run.returncode == 0, out[-3000:]
    assert lost is not None and resumed_at is not None, out[-3000:]
    assert f"step {steps}/{steps} (100%)" in out

    # Ray placed the first workers one on each worker node (1 CPU each; the head has none).
    assert sorted(a["node"] for a in placed) == sorted(first), (placed, first)
    # The second attempt's: one on the node that survived, one on the node that joined.
    earlier |= {a["id"] for a in placed}
    again = [a["node"] for a in nodes.actors("RayTrainWorker") if a["id"] not in earlier]
    assert sorted(again) == sorted(set(first) - {lost} | {added}), (again, first, lost, added)
    # Each node read the dataset from the bucket into its own cache: no disk is shared.
    assert all(_has_dataset(home) for home in nodes.workers.values()), list(nodes.root.rglob("manifest.json"))

    # Resumed from the newest checkpoint: less than one checkpoint interval was trained twice.
    redone = reached - resumed_at
    print(f"node lost after step {reached}; resumed at step {resumed_at}: {redone} step(s) trained twice")
    assert resumed_at >= every and resumed_at == reached // every * every, (reached, resumed_at)

    # One MLflow run, the one the command opened: every step, the ranks in step at each.
    client, [record] = _mlflow_runs(mlflow_url, "node-loss")
    assert f"MLflow run {record.info.run_id} (new)" in out and "(resumed)" not in out
    assert record.info.status == "FINISHED" and "eval/modes" in record.data.metrics
    assert {s for s, _ in _history(client, record.info.run_id, "d_loss")} == set(range(1, steps + 1))
    spread = _history(client, record.info.run_id, "rank_weight_spread")
    assert {s for s, _ in spread} == set(range(1, steps + 1)) and all(v == 0.0 for _, v in spread), spread
    assert steps_trained(Storage.from_uri(f"s3://{BUCKET}/{PREFIX}").child("checkpoints"), "node-loss") == steps


def _checkpoint_stored(run_name: str) -> bool:
    return any(k.endswith("/state.pt") for k in bucket_keys(f"{PREFIX}/checkpoints/{run_name}/"))


def _next(lines: queue.Queue, deadline: float, seen: list[str]) -> str | None:
    try:
        return lines.get(timeout=max(0.1, deadline - time.monotonic()))
    except queue.Empty:
        raise AssertionError("the command did not end in time:\n" + "".join(seen)[-3000:]) from None


def _lines_of(process: subprocess.Popen) -> queue.Queue:
    """The process's output line by line, then None; read by a thread, so a hung command cannot
    hang the test (`get` times out)."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_a_search_spreads_its_trials_over_the_nodes_and_asha_stops_the_poor_ones(
    nodes, dataset_root, env, tmp_path: Path
):
    """8 trials, 4 at a time on 4 nodes of 1 CPU. Half learn at lr_g 1e-5 and find no mode by the
    first milestone; the others (ring-hq's 1e-3) find most of them by then."""
    workers = nodes.with_workers(4)
    earlier = {a["id"] for a in nodes.actors("ImplicitFunc")}  # Tune's actor for a function trainable
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"optim.lr_g": {"grid": [1.0e-5, 1.0e-3]}}))
    more = ["--space", str(space), "--num-samples", "4", "--max-concurrent", "4", "--milestones", "2"]
    more += ["--eval-samples", "300", "--scheduler", "asha"]
    command = _command("tune", "ring-hq", "spread", dataset_root, ["train.steps=600"], *more)
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    trials = list(csv.DictReader((Path(env["GANPIPE_HOME"]) / "tune" / "spread" / "results.csv").open()))
    assert len(trials) == 8, trials
    # Where Ray placed the trials: on every worker node, none on the head.
    placed = [a["node"] for a in nodes.actors("ImplicitFunc") if a["id"] not in earlier]
    assert len(placed) == 8 and set(placed) == set(workers), (placed, workers)
    assert all(_has_dataset(nodes.workers[node]) for node in workers)
    # ASHA stopped trials at the first milestone, all of them poor ones; the good ones went on.
    stopped = [t for t in trials if t["milestones"] == "1"]
    assert stopped and all(float(t["optim.lr_g"]) == 1.0e-5 for t in stopped), trials
    assert all(t["milestones"] == "2" for t in trials if float(t["optim.lr_g"]) == 1.0e-3), trials
    best = max(float(t["objective"]) for t in trials)
    assert all(float(t["objective"]) < best for t in stopped), trials


if __name__ == "__main__":
    serve_cluster(Path(sys.argv[1]))
