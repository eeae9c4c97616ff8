"""A team's load, measured: many commands at once against one MLflow server, one Ray cluster and
one Prefect server, and whether anything was lost, doubled or left behind.

    python bench/load.py                                   # 8 trainings, 4 promotions, 2 pipelines; SQLite
    python bench/load.py --store postgresql                # MLflow and Prefect on a throwaway PostgreSQL
    python bench/load.py --trainings 3 --promotions 3 --json load.json

It starts the services itself (bench/load_services.py: subprocesses on free ports of 127.0.0.1,
stopped by PID at the end), with storage (GANPIPE_STORAGE) and GANPIPE_HOME in a temp folder,
then runs three phases, each as a team would, through the `ganpipe` command:

1. `--trainings` N `ganpipe train` processes at once (ring-hq, 500 steps, metrics every 10
   steps, a checkpoint and a sample picture every 100), each registering its generator as a
   version of one model. The cluster has the machine's CPUs; each worker reserves CPUs/N of them.
2. `--promotions` P `ganpipe promote MODEL --version V` processes at once, one per version 1..P.
3. `--pipelines` K `ganpipe pipeline --name load-a`, `--name load-b`, ... at once (no search),
   with PREFECT_API_URL at the Prefect server.

It prints progress lines, then:
- metrics logged against expected, per training run (the N trainings' and the pipelines'):
  MLflow's metric history of every training metric, against every 10th step up to the last;
  `lost` is a (metric, step) never logged, `duplicated` a (metric, step) logged more than once;
- the MLflow server's requests per phase: count, p50/p99/max latency, 4xx and 5xx answers;
  the failed ones by endpoint (a 4xx is often an answer, e.g. "no such experiment yet"), and
  the endpoints of the slowest requests;
- every promotion decision, and whether exactly one version is champion, the promoted decisions
  form one chain (each over the previous one's challenger), every decision is recorded on its
  version (tag `promotion.vs.*`) and as a promotion run, and no lease.json is left in storage;
- each pipeline's exit code, Prefect flow-run state and champion.
Goals: none lost, none duplicated, no 5xx, exactly one champion, every decision recorded, no
lease held afterwards, every pipeline completed. `--json` writes the same figures.

How request latency is measured, and what was checked first: `mlflow server --expose-prometheus`
(prometheus_flask_exporter) fails to start with MLflow 3.17.2 here: the exporter is not
installed (`ModuleNotFoundError: prometheus_flask_exporter`; it is not among the project's
dependencies). Under the default uvicorn it would also miss the artifact uploads and downloads,
which MLflow 3.17 serves from a FastAPI router beside the Flask app it instruments. uvicorn's
access log has status codes but no durations. gunicorn's access log has both (`%(D)s`, the
request's microseconds), so by default the server runs as `mlflow server --workers 1
--gunicorn-opts "--threads 16 --access-logfile ..."`: one process serving from a thread pool,
as uvicorn `--workers 1` (infra/) does, all endpoints on the Flask app. The percentiles are
exact (nearest rank over every request), not histogram-interpolated; they exclude /health and
/version (the readiness probes). `--server uvicorn` runs MLflow's default server instead and
reports requests and failures without latency.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # load_services, beside this file

from load_services import BIN, mlflow_server, postgres, prefect_server, ray_head, stop_tree  # noqa: E402

from gan_core.config import TrainConfig  # noqa: E402
from gan_core.metrics import watch_interval  # noqa: E402

# The collapse watch's metrics come about ten times a run, not at every logged step.
WATCHED = ("coverage", "collapsed")

MODEL = "load-generator"
EXPERIMENT = "load"
PRESET = "ring-hq"  # small MLPs: 500 steps reach all 8 modes, so a challenger passes the promotion gates
STEPS, LOG_EVERY = 500, 10
CONFIG = [
    f"train.steps={STEPS}", f"train.log_every={LOG_EVERY}", "train.sample_every=100", "train.checkpoint_every=100",
    "data.n_train=5000", "eval.n_samples=1000",
]  # fmt: skip
PROMOTE_BOOTSTRAP = 50
PIPELINE_BOOTSTRAP = 20
RUN_NAME_TAG = "ganpipe.run_name"  # pipelines/tracking/runs.py: the tag that names a training run
LEASE_FILE = "lease.json"  # pipelines/storage/lease.py
QUIET_PATHS = ("/health", "/version")  # readiness probes, not load
OURS = ("AWS_", "PREFECT_", "MLFLOW_", "GANPIPE_", "RAY_")  # the settings the bench gives its commands itself


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainings", type=int, default=8, help="concurrent `ganpipe train` (default 8)")
    parser.add_argument("--promotions", type=int, default=4, help="concurrent `ganpipe promote` (default 4)")
    parser.add_argument("--pipelines", type=int, default=2, help="concurrent `ganpipe pipeline` (default 2)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--server", choices=("gunicorn", "uvicorn"), default="gunicorn",
        help="MLflow's server: gunicorn logs each request's duration; uvicorn, MLflow's default, does not",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a phase may take before it is stopped")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, stores) and print it")
    args = parser.parse_args()
    if not 1 <= args.promotions <= args.trainings or args.pipelines > 26:
        parser.error("need 1 <= --promotions <= --trainings and --pipelines <= 26")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped bench still stops its services
    report = run(args)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    sys.exit(0 if report.goals_met else 1)


# -- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finished:
    """One `ganpipe` process: how it ended, what it printed on stdout (its result)."""

    name: str
    code: int | None  # None: stopped at the phase's timeout
    seconds: float
    stdout: str
    log: str  # its stderr, in the work folder


@dataclass(frozen=True)
class MetricCount:
    run: str
    expected: int
    logged: int
    lost: int
    duplicated: int
    unexpected: int  # points at steps their metric is not logged at (see logged_steps)


@dataclass(frozen=True)
class Requests:
    phase: str
    count: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    client_errors: int  # 4xx
    server_errors: int  # 5xx
    failed: dict[str, int]  # "404 GET /api/2.0/mlflow/..." -> count
    slowest: dict[str, float]  # "POST /api/2.0/mlflow/..." -> its slowest request's ms, the 5 slowest endpoints


@dataclass(frozen=True)
class Promotions:
    decisions: list[dict]  # pipelines.registry.promotion.Decision, as `ganpipe promote` prints it
    failed: list[str]  # promote processes that did not exit 0
    champion: str | None
    one_chain: bool  # the promoted decisions form one chain, ending at the champion
    recorded: int  # decisions found on their version's tags and as a promotion run
    leases_left: list[str]


@dataclass(frozen=True)
class Pipeline:
    name: str
    code: int | None
    state: str  # the Prefect flow run's
    champion: str | None


@dataclass
class LoadReport:
    store: str
    server: str
    cpus: int
    phase_seconds: dict[str, float] = field(default_factory=dict)
    trainings_failed: list[str] = field(default_factory=list)
    metrics: list[MetricCount] = field(default_factory=list)
    requests: list[Requests] = field(default_factory=list)
    promotions: Promotions | None = None
    pipelines: list[Pipeline] = field(default_factory=list)

    @property
    def goals_met(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        found = [f"training {name} failed" for name in self.trainings_failed]
        found += [f"{m.run}: {m.lost} lost, {m.duplicated} duplicated" for m in self.metrics if m.lost or m.duplicated]
        found += [f"{r.phase}: {r.server_errors} 5xx" for r in self.requests if r.server_errors]
        if (p := self.promotions) is not None:
            found += [f"promotion {name} failed" for name in p.failed]
            found += [] if p.champion and p.one_chain else ["not exactly one chain of promotions to one champion"]
            found += [] if p.recorded == len(p.decisions) else [f"{len(p.decisions) - p.recorded} decisions unrecorded"]
            found += [f"lease left: {path}" for path in p.leases_left]
        found += [f"pipeline {p.name}: exit {p.code}, {p.state}" for p in self.pipelines if p.state != "COMPLETED"]
        return found


# -- the run -------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> LoadReport:
    work = Path(tempfile.mkdtemp(prefix="ganpipe-load-"))
    cpus = os.cpu_count() or 1
    report = LoadReport(args.store, args.server, cpus)
    progress(f"work folder {work}; {args.store}, MLflow on {args.server}, Ray with {cpus} CPUs")
    try:
        with services(args, work, cpus) as (env, access_log):
            marks = [("start", line_count(access_log))]
            cpus_each = cpus / max(args.trainings, args.pipelines)

            started = time.monotonic()
            trained = trainings(args.trainings, cpus_each, env, work, args.timeout)
            report.phase_seconds["trainings"] = time.monotonic() - started
            report.trainings_failed = [f.name for f in trained if f.code != 0]
            marks.append(("trainings", line_count(access_log)))

            started = time.monotonic()
            report.promotions = promotions(args.promotions, env, work, args.timeout)
            report.phase_seconds["promotions"] = time.monotonic() - started
            marks.append(("promotions", line_count(access_log)))

            if args.pipelines:
                started = time.monotonic()
                report.pipelines = pipelines(args.pipelines, cpus_each, env, work, args.timeout)
                report.phase_seconds["pipelines"] = time.monotonic() - started
                marks.append(("pipelines", line_count(access_log)))

            progress("counting metric points")
            report.metrics = metric_counts(env["MLFLOW_TRACKING_URI"])
            report.requests = request_figures(access_log, marks, args.server)
    finally:
        if args.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report


@contextlib.contextmanager
def services(args: argparse.Namespace, work: Path, cpus: int) -> Iterator[tuple[dict[str, str], Path]]:
    """The stores, the MLflow server, the Ray cluster and the Prefect server; yields the
    environment every `ganpipe` command gets, and the MLflow server's access log."""
    with contextlib.ExitStack() as stack:
        prefect_db = None
        if args.store == "postgresql":
            progress("starting PostgreSQL")
            pg = stack.enter_context(postgres(["mlflow", "prefect"]))
            store_uri, prefect_db = f"{pg}/mlflow", f"{pg.replace('postgresql://', 'postgresql+asyncpg://')}/prefect"
        else:
            store_uri = f"sqlite:///{work / 'mlflow.db'}"
        progress("starting the MLflow server")
        url, access_log = stack.enter_context(mlflow_server(store_uri, work / "artifacts", work, args.server))
        progress("starting the Ray cluster")
        address, ray_env = stack.enter_context(ray_head(cpus, work))
        prefect_env: dict[str, str] = {}
        if args.pipelines:
            progress("starting the Prefect server")
            _, prefect_env = stack.enter_context(prefect_server(work, prefect_db))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(OURS)},
            "GANPIPE_HOME": str(work / "home"),
            "GANPIPE_STORAGE": str(work / "storage"),
            "GANPIPE_EXPERIMENT": EXPERIMENT,
            "MLFLOW_TRACKING_URI": url,
            "RAY_ADDRESS": address,
            **ray_env,
            **prefect_env,
        }
        yield env, access_log


def trainings(count: int, cpus_each: float, env: dict[str, str], work: Path, timeout: float) -> list[Finished]:
    commands = {
        f"load-{i}": [
            str(BIN / "ganpipe"),
            "train",
            "--preset",
            PRESET,
            "--name",
            f"load-{i}",
            "--workers",
            "1",
            "--cpus-per-worker",
            f"{cpus_each:g}",
            "--max-failures",
            "0",
            "--register",
            MODEL,
            *sets([*CONFIG, f"train.seed={i}"]),
        ]  # fmt: skip
        for i in range(count)
    }
    return run_together("trainings", commands, env, work, timeout)


def promotions(count: int, env: dict[str, str], work: Path, timeout: float) -> Promotions:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    versions = sorted((v.version for v in client.search_model_versions(f"name='{MODEL}'")), key=int)[:count]
    commands = {
        f"v{v}": [str(BIN / "ganpipe"), "promote", MODEL, "--version", v, "--bootstrap", str(PROMOTE_BOOTSTRAP)]
        for v in versions
    }
    finished = run_together("promotions", commands, env, work, timeout)
    decisions = [json.loads(f.stdout) for f in finished if f.code == 0]
    champion = alias(client, MODEL, "champion")
    return Promotions(
        decisions=decisions,
        failed=[f.name for f in finished if f.code != 0],
        champion=champion,
        one_chain=one_chain(decisions, champion),
        recorded=sum(recorded(client, d) for d in decisions),
        leases_left=[str(p.relative_to(work)) for p in (work / "storage").rglob(LEASE_FILE)],
    )


def pipelines(count: int, cpus_each: float, env: dict[str, str], work: Path, timeout: float) -> list[Pipeline]:
    from mlflow.tracking import MlflowClient

    names = [f"load-{chr(ord('a') + i)}" for i in range(count)]
    commands = {
        name: [
            str(BIN / "ganpipe"),
            "pipeline",
            "--name",
            name,
            "--preset",
            PRESET,
            "--source",
            "ring",
            "--search-samples",
            "0",
            "--train-steps",
            str(STEPS),
            "--bootstrap",
            str(PIPELINE_BOOTSTRAP),
            "--n-train",
            "5000",
            "--cpus-per-worker",
            f"{cpus_each:g}",
            *sets([c for c in CONFIG if not c.startswith(("train.steps", "data.n_train"))]),
        ]  # fmt: skip
        for name in names
    }
    finished = run_together("pipelines", commands, env, work, timeout)
    states = flow_run_states(env["PREFECT_API_URL"])
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    return [
        Pipeline(f.name, f.code, states.get(f.name, "no flow run"), alias(client, f"{f.name}-generator", "champion"))
        for f in finished
    ]


def sets(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


# -- running commands together -------------------------------------------------------------------
def run_together(phase: str, commands: dict[str, list[str]], env: dict[str, str], work: Path, timeout: float):
    """Start every command at once; wait for all, saying how many are done every 15 s; stop (by
    PID) those still running after `timeout`."""
    folder = work / phase
    folder.mkdir()
    started = time.monotonic()
    running = {}
    for name, command in commands.items():
        out, err = (folder / f"{name}.out").open("w"), (folder / f"{name}.log").open("w")
        running[name] = subprocess.Popen(
            command, stdout=out, stderr=err, env=env, cwd=work, start_new_session=True, text=True
        )
        out.close(), err.close()
    progress(f"{phase}: {len(commands)} started")
    ended: dict[str, tuple[int | None, float]] = {}
    try:
        wait_for_all(phase, running, ended, started, timeout)
    finally:  # stopped early (an error, Ctrl-C): no command outlives the bench
        for name, process in running.items():
            if name not in ended:
                stop_tree(process)
    finished = []
    for name, (code, seconds) in ended.items():
        log = folder / f"{name}.log"
        if code != 0:
            progress(f"{phase}: {name} failed ({code}); the end of {log}:\n{log.read_text()[-2000:]}")
        finished.append(Finished(name, code, seconds, (folder / f"{name}.out").read_text(), str(log)))
    return sorted(finished, key=lambda f: f.name)


def wait_for_all(phase: str, running: dict, ended: dict, started: float, timeout: float) -> None:
    said = started
    while len(ended) < len(running):
        time.sleep(1)
        now = time.monotonic()
        for name, process in running.items():
            if name not in ended and process.poll() is not None:
                ended[name] = (process.returncode, now - started)
                progress(f"{phase}: {name} exited {process.returncode} after {now - started:.0f} s")
        if now - started > timeout:
            for name, process in running.items():
                if name not in ended:
                    stop_tree(process)
                    ended[name] = (None, now - started)
                    progress(f"{phase}: {name} stopped at the {timeout:.0f} s timeout")
        elif now - said >= 15:
            said = now
            progress(f"{phase}: {len(ended)}/{len(running)} done")


# -- promotions ----------------------------------------------------------------------------------
def alias(client, model: str, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model, name).version
    except MlflowException:
        return None


def one_chain(decisions: list[dict], champion: str | None) -> bool:
    """The promoted decisions, each made over the champion of its time, must chain: one over no
    champion (or over the champion before the bench), each next one over the previous one's
    challenger, and the last one's challenger is the champion now. Two promotions decided against
    the same champion (a lease that did not hold) break the chain."""
    promoted = [d for d in decisions if d["promoted"]]
    over = {d["champion"]: d for d in promoted}
    if len(over) != len(promoted):
        return False  # two promotions over the same champion
    link, seen = None, 0
    while link in over:
        link, seen = over[link]["challenger"], seen + 1
    return seen == len(promoted) and link == champion


def recorded(client, decision: dict) -> bool:
    """On the challenger's version (tag promotion.vs.CHAMPION, the decision's JSON) and as a
    promotion run (record_decision_run)."""
    version = client.get_model_version(decision["model"], decision["challenger"])
    tag = version.tags.get(f"promotion.vs.{decision['champion'] or 'none'}")
    on_version = tag is not None and json.loads(tag)["promoted"] == decision["promoted"]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    name = f"promote-{decision['model']}-v{decision['challenger']}"
    as_run = bool(client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'"))
    return on_version and as_run


# -- pipelines -----------------------------------------------------------------------------------
def flow_run_states(api: str) -> dict[str, str]:
    """{pipeline name: its gan-pipeline flow run's state}, from the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        flows = {f.id: f.name for f in client.read_flows()}
    return {r.parameters.get("name"): r.state.type.value for r in runs if flows.get(r.flow_id) == "gan-pipeline"}


# -- metrics -------------------------------------------------------------------------------------
def logged_steps(key: str, train: TrainConfig) -> set[int]:
    """The steps a training run logs `key` at: every log_every-th, or the collapse watch's."""
    every = watch_interval(train) if key in WATCHED else train.log_every
    return set(range(every, train.steps + 1, every)) | {train.steps}


def metric_counts(tracking_uri: str) -> list[MetricCount]:
    """For every training run (tagged with a run name): each training metric's points against
    the steps it is logged at. The training metrics are those any training run logged, but the
    evaluation's (`eval/...`, once at the end)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:  # no training got as far as MLflow
        return []
    runs = client.search_runs([experiment.experiment_id], f"tags.`{RUN_NAME_TAG}` LIKE 'load-%'")
    keys = sorted({k for r in runs for k in r.data.metrics if not k.startswith("eval/")})
    counts = []
    for r in sorted(runs, key=lambda r: r.data.tags[RUN_NAME_TAG]):
        train = TrainConfig(steps=int(r.data.params["train.steps"]), log_every=int(r.data.params["train.log_every"]))
        expected = {key: logged_steps(key, train) for key in keys}
        points = Counter((key, p.step) for key in keys for p in client.get_metric_history(r.info.run_id, key))
        counts.append(
            MetricCount(
                run=r.data.tags[RUN_NAME_TAG],
                expected=sum(len(steps) for steps in expected.values()),
                logged=sum(points.values()),
                lost=sum((key, step) not in points for key in keys for step in expected[key]),
                duplicated=sum(n - 1 for n in points.values()),
                unexpected=sum(n for (key, step), n in points.items() if step not in expected[key]),
            )
        )
    return counts


# -- requests ------------------------------------------------------------------------------------
GUNICORN_LINE = re.compile(r'^(\d{3}) (\d+) "(\S+) (\S+)')  # load_services.ACCESS_FORMAT
UVICORN_LINE = re.compile(r'"(\S+) (\S+) HTTP/[\d.]+" (\d{3})')


def line_count(path: Path) -> int:
    return len(path.read_text(errors="replace").splitlines()) if path.exists() else 0


def request_figures(access_log: Path, marks: list[tuple[str, int]], server: str) -> list[Requests]:
    """The requests of each phase (the access log's lines between two marks), and of all."""
    lines = access_log.read_text(errors="replace").splitlines()
    figures = [
        requests_of(phase, lines[start:end], server) for (_, start), (phase, end) in zip(marks, marks[1:], strict=False)
    ]
    return [*figures, requests_of("all", lines[marks[0][1] : marks[-1][1]], server)]


def requests_of(phase: str, lines: list[str], server: str) -> Requests:
    parsed = []  # (status, ms or None, method, path)
    for line in lines:
        if server == "gunicorn" and (m := GUNICORN_LINE.match(line)):
            parsed.append((int(m[1]), int(m[2]) / 1000, m[3], m[4]))
        elif server == "uvicorn" and (m := UVICORN_LINE.search(line)):
            parsed.append((int(m[3]), None, m[1], m[2]))
    parsed = [p for p in parsed if p[3].split("?")[0] not in QUIET_PATHS]
    times = sorted(p[1] for p in parsed if p[1] is not None)
    failed = Counter(f"{s} {method} {endpoint(path)}" for s, _, method, path in parsed if s >= 400)
    return Requests(
        phase=phase,
        count=len(parsed),
        p50_ms=nearest_rank(times, 0.50),
        p99_ms=nearest_rank(times, 0.99),
        max_ms=times[-1] if times else None,
        client_errors=sum(1 for p in parsed if 400 <= p[0] < 500),
        server_errors=sum(1 for p in parsed if p[0] >= 500),
        failed=dict(failed.most_common()),
        slowest=slowest_endpoints(parsed, 5),
    )


def slowest_endpoints(parsed: list[tuple], count: int) -> dict[str, float]:
    worst: dict[str, float] = {}
    for _, ms, method, path in parsed:
        if ms is not None:
            key = f"{method} {endpoint(path)}"
            worst[key] = max(worst.get(key, 0.0), ms)
    return dict(sorted(worst.items(), key=lambda item: -item[1])[:count])


def nearest_rank(ordered: list[float], q: float) -> float | None:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else None


def endpoint(path: str) -> str:
    """The path without its query and run-specific parts, so that failures group by endpoint."""
    path = path.split("?")[0]
    return re.sub(r"/mlflow-artifacts/artifacts/.*", "/mlflow-artifacts/artifacts/...", path)


# -- printing ------------------------------------------------------------------------------------
STARTED = time.monotonic()


def progress(line: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.0f} s] {line}", flush=True)


def table(header: list[str], rows: list[list[object]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(cell(v) for v in row) + " |")
    print()


COUNTS = ("expected", "logged", "lost", "duplicated", "unexpected")


def cell(value: object) -> str:
    return "–" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)


def print_report(report: LoadReport) -> None:
    print(f"\nLoad: MLflow store {report.store}, MLflow on {report.server}, {report.cpus} CPUs")
    print("phases: " + ", ".join(f"{k} {v:.0f} s" for k, v in report.phase_seconds.items()) + "\n")
    m = report.metrics
    table(
        ["training run", "expected", "logged", "lost", "duplicated", "off-step"],
        [[c.run, c.expected, c.logged, c.lost, c.duplicated, c.unexpected] for c in m]
        + [["all", *(sum(getattr(c, k) for c in m) for k in COUNTS)]],
    )
    table(
        ["MLflow requests", "count", "p50 ms", "p99 ms", "max ms", "4xx", "5xx"],
        [[r.phase, r.count, r.p50_ms, r.p99_ms, r.max_ms, r.client_errors, r.server_errors] for r in report.requests],
    )
    failed = report.requests[-1].failed if report.requests else {}
    if failed:
        table(["failed requests, all phases", "count"], [[k, v] for k, v in failed.items()])
    slowest = report.requests[-1].slowest if report.requests else {}
    if slowest:
        table(["slowest endpoints, all phases", "slowest request, ms"], [[k, v] for k, v in slowest.items()])
    if (p := report.promotions) is not None:
        table(
            ["version", "over champion", "promoted", "reason"],
            [[d["challenger"], d["champion"], d["promoted"], d["reason"]] for d in p.decisions]
            + [[name, "", "", "process failed"] for name in p.failed],
        )
        print(f"champion: version {p.champion}; one chain of promotions: {p.one_chain}; decisions recorded: "
              f"{p.recorded}/{len(p.decisions)}; leases left: {p.leases_left or 'none'}\n")  # fmt: skip
    if report.pipelines:
        rows = [[p.name, p.code, p.state, p.champion] for p in report.pipelines]
        table(["pipeline", "exit", "flow run", "champion"], rows)
    problems = report.problems()
    print("goals met" if not problems else "goals NOT met:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
