"""What every Ray process of a ganpipe job runs with: the runtime env given to `ray.init`.

- The log setup hook (runtime/logs.py): Ray Train's startup timeouts and report lines in one line.
- Ray Train's controller polls its workers every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (Ray's
  default: 2 s), and a run ends only at the poll after its workers finish: each fit waited up to
  2 s for it, twice over (measured with bench/ray_overhead.py: about 3 s of a 1-step fit's fixed
  cost). Polled every 0.5 s, one RPC per worker twice a second, which costs a step nothing
  measurable. A value the user exported, or a submitted job's own, is kept.

Checked: Ray merges a submitted job's runtime env with this one key by key (env_vars variable by
variable) and refuses a key both set, so each entry is left out where the job already has it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pipelines.runtime.logs import RAY_SETUP_HOOK

HEALTH_CHECK_INTERVAL = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"  # read by Ray Train's controller
HEALTH_CHECK_INTERVAL_S = "0.5"


def ray_runtime_env() -> dict[str, Any]:
    """The runtime env for `ray.init`, minus what a submitted Ray job already sets."""
    submitted = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}").get("runtime_env") or {}
    env: dict[str, Any] = {}
    if "worker_process_setup_hook" not in submitted:
        env["worker_process_setup_hook"] = RAY_SETUP_HOOK
    if HEALTH_CHECK_INTERVAL not in (submitted.get("env_vars") or {}):
        env["env_vars"] = {HEALTH_CHECK_INTERVAL: os.environ.get(HEALTH_CHECK_INTERVAL, HEALTH_CHECK_INTERVAL_S)}
    return env
