"""Connecting to Ray: the cluster at RAY_ADDRESS, or a local one started on demand."""

from __future__ import annotations

from collections.abc import Callable


def ensure_ray(address: str | None, log: Callable[[str], None] = print) -> None:
    import ray

    if ray.is_initialized():
        return
    if address:
        log(f"connecting to the Ray cluster at {address}")
        ray.init(address=address, log_to_driver=True)
    else:
        log("starting a local Ray cluster")
        # Keep the dashboard (ray[default]): Train V2's controller is monitored through its state API.
        ray.init(log_to_driver=True)
