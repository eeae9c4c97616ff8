"""Connecting to Ray: the cluster at RAY_ADDRESS, or a local one started on demand.

Left to itself, `ray.init` against a cluster that is not there logs Ray's own connection
warnings for minutes on end (seen: still at it after 5 min 40 s). So the cluster's port is asked
first: a cluster that does not answer is waited for up to GANPIPE_RAY_WAIT_S, saying so, and
otherwise the command stops with one line naming the address and the cause.
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.cluster.job_env import ray_runtime_env
from pipelines.cluster.local import start_local_cluster
from pipelines.runtime.faults import first_line
from pipelines.runtime.waiting import FIRST_RETRY_S, ServiceUnavailable, tcp_probe, wait_until_answers
from pipelines.settings import RAY_WAIT_S

GCS_PORT = 6379  # a head node's port when RAY_ADDRESS names only the host
CLIENT_PORT = 10001  # ... and Ray Client's, for ray://host
NOT_A_PLACE = {"auto", "local"}  # addresses Ray resolves itself, on this machine

_local_cpus: float | None = None  # the CPUs of the local cluster this process started, if it did


class RayUnavailable(ServiceUnavailable):
    """The Ray cluster at RAY_ADDRESS did not answer for as long as the caller was willing to wait."""


def ensure_ray(address: str | None, log: Callable[[str], None] = print, wait_s: float = RAY_WAIT_S) -> None:
    import ray

    global _local_cpus
    if ray.is_initialized():
        return
    if not address:
        log("starting a local Ray cluster")
        _local_cpus = start_local_cluster()
        return
    wait_for_cluster(address, wait_s, log)
    log(f"connecting to the Ray cluster at {address}")
    try:
        ray.init(address=address, log_to_driver=True, runtime_env=ray_runtime_env())
    except ConnectionError as error:  # something answers at the port, but Ray could not join it
        raise RayUnavailable(
            f"the Ray cluster at {address} accepts connections, but Ray could not join it "
            f"({first_line(error)}). Check that RAY_ADDRESS names the head's GCS port (host:{GCS_PORT}) or "
            f"Ray Client's (ray://host:{CLIENT_PORT}), and that this command has the cluster's RAY_AUTH_TOKEN."
        ) from error


def local_cluster_cpus() -> float | None:
    """The CPUs of the local Ray cluster `ensure_ray` started in this process; None when it
    joined a cluster at RAY_ADDRESS, whose CPUs other jobs may share."""
    return _local_cpus


def wait_for_cluster(
    address: str, wait_s: float, log: Callable[[str], None] = print, first_retry_s: float = FIRST_RETRY_S
) -> None:
    """Return once something accepts connections at the cluster's address; raise RayUnavailable
    after `wait_s` seconds."""
    place = host_and_port(address)
    if place is None:
        return
    host, port = place
    wait_until_answers(
        f"the Ray cluster at {address}",
        lambda: tcp_probe(host, port),
        wait_s,
        "GANPIPE_RAY_WAIT_S",
        log,
        RayUnavailable,
        "Start it, or unset RAY_ADDRESS to train on a local Ray cluster.",
        first_retry_s,
    )


def host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a RAY_ADDRESS: host:port (a head's GCS) or ray://host:port (Ray Client);
    None for `auto` and `local`, which Ray looks up on this machine."""
    if address.strip().lower() in NOT_A_PLACE:
        return None
    if "://" in address and not address.startswith("ray://"):
        scheme = address.split("://", 1)[0]
        raise ValueError(
            f"RAY_ADDRESS={address!r} is not allowed: {scheme}:// is no Ray address; "
            "give host:port (the head's GCS port, 6379) or ray://host:port (Ray Client)"
        )
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://").rstrip("/")
    host, colon, port = rest.rpartition(":")
    if not colon:
        return rest, CLIENT_PORT if client else GCS_PORT
    if not port.isdigit():
        raise ValueError(f"RAY_ADDRESS={address!r} is not allowed: host:port, ray://host:port, auto or local")
    return host.strip("[]"), int(port)  # [::1]:6379 is an IPv6 host
