#!/usr/bin/env bash
# Issue #47's checks (items 2 and 3) for a session that is lent a GPU, as one call of the device tool:
#
#   run(command="bash bench/gpu_session_47.sh", carry=[".whl"], timeout_s=540)
#   bash bench/gpu_session_47.sh ray        # one part: setup, ray, default, compiled or autotune
#   GPU_SESSION_CPU=1 bash bench/gpu_session_47.sh   # the same parts, a few steps each on CPU (a rehearsal)
#
# The device image's python3 has torch but not ray (nor mlflow, prefect, boto3: the Ray Train
# worker needs none of them with tracking off and local storage). Ray travels in .whl/ (ignored
# by git, named in `carry`): .whl/ray-2.60.0-cp312-slim.tar.xz, Ray's cp312 wheel unpacked without
# its Java jar, RLlib, Serve, LLM and the dashboard's web client (xz: 29 MB, the wheel is 79 MB),
# and the wheels of what Ray and the driver import that the image lacks: jsonschema,
# jsonschema-specifications, referencing, rpds-py, pydantic, pydantic-core, annotated-types,
# typing-inspection (Ray Train V2) and botocore, jmespath (pipelines/runtime/faults.py, imported
# by the driver through pipelines.train.scaling). Both go into $GPU_SESSION_SITE (/tmp/site).
#
# Each part has its own time limit, cut to what is left of GPU_SESSION_SECONDS (510), and writes
# its log under $OUT as it goes, so what finished comes back even when a later part runs out of
# time. Most needed first:
#   setup     unpack and install what .whl/ carries, unless python3 already imports ray (~15 s);
#   ray       item 2: bench/ray_gpu.py, the default path (graphed, uncompiled, as `ganpipe train`
#             runs on CUDA) at batches 64 and 1024, one Ray Train worker on the GPU against
#             bench/train_step.py's step in the same process (~90 s);
#   default   item 3: bench/train_step.py's default path against the reference at 64 and 1024,
#             with a kernel-time table of 20 steps (torch.profiler) for each (~40 s);
#   compiled  item 3: the same with train.compile (compile_mode default), one process per batch
#             (a second batch shape recompiles as dynamic), 1024 then 64 (~3 min); their first
#             steps' time against the default path's gives the compile's break-even step count;
#   autotune  max-autotune at batch 1024 (measured at 107.4k images/s before, ~4 min): only when
#             240 s are left, which the parts above usually leave not.
# At the end: $OUT/figures.jsonl (every figure line, and one line per batch and path saying
# whether item 3's target is met, and the compile's break-even), $OUT/kernels.txt (the tables).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-session-47}
PY=${PYTHON:-python3}
PART=${1:-all}
TOTAL=${GPU_SESSION_SECONDS:-510}
SITE=${GPU_SESSION_SITE:-/tmp/site}
CPU=${GPU_SESSION_CPU:-}
case $PART in all | setup | ray | default | compiled | autotune) ;; *)
	echo "usage: $0 [all|setup|ray|default|compiled|autotune]; got '$PART'" >&2
	exit 2
	;;
esac
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}

# part NAME SECONDS COMMAND...: runs COMMAND for at most SECONDS (or what is left of TOTAL), its
# output to the screen and appended to $OUT/NAME.
part() {
	local name=$1 limit=$2 start=$SECONDS
	shift 2
	((limit > TOTAL - SECONDS)) && limit=$((TOTAL - SECONDS))
	if ((limit < 10)); then
		echo "== $name: skipped, ${TOTAL} s used up" | tee -a "$OUT/$name"
		return 1
	fi
	echo "== $name (at most ${limit} s): $*" | tee -a "$OUT/$name"
	timeout --signal=INT --kill-after=20 "$limit" "$@" 2>&1 | tee -a "$OUT/$name"
	local status=${PIPESTATUS[0]}
	echo "== $name: exit status $status after $((SECONDS - start)) s$([[ $status == 124 ]] && echo ', out of time')" |
		tee -a "$OUT/$name"
	return "$status"
}

# What .whl/ carries, into $SITE (Ray's own tarball unpacked, the wheels installed without deps).
install_carried() {
	if "$PY" -c 'import ray' 2>/dev/null; then
		echo "ray is importable already: $("$PY" -c 'import ray; print(ray.__version__, ray.__file__)')"
		return 0
	fi
	mkdir -p "$SITE" &&
		# Python's own lzma where the image has no xz for tar; Ray's binaries keep their modes either way.
		if command -v xz >/dev/null; then tar -xJf .whl/ray-*.tar.xz -C "$SITE"; else
			"$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="tar")' .whl/ray-*.tar.xz "$SITE"
		fi &&
		"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl &&
		"$PY" -c 'import ray, ray.train.torch, pydantic, jsonschema, botocore.exceptions; print("ray", ray.__version__, "from", ray.__file__)'
}

# After a failed Ray part: the ends of Ray's own logs, which say why a raylet or worker died.
ray_logs() {
	local logs=/tmp/ray/session_latest/logs
	[[ -d $logs ]] || return 0
	for f in "$logs"/raylet.out "$logs"/gcs_server.out "$logs"/runtime_env_agent.log "$logs"/worker-*.err; do
		[[ -s $f ]] && {
			echo "--- $f"
			tail -n 25 "$f"
		}
	done
}

if [[ -n $CPU ]]; then # a rehearsal: every part, a few steps each on CPU
	RAY_ARGS=(--cpu-smoke)
	STEP_ARGS=(--device cpu --steps 2 --warmup 1 --profile 1 --threads 2)
	SMALL=(--batches 2) LARGE=(--batches 4)
else
	RAY_ARGS=()
	STEP_ARGS=(--profile 20)
	SMALL=(--batches 64 --steps 500 --warmup 50) LARGE=(--batches 1024 --steps 100 --warmup 20)
fi

{
	nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
	"$PY" -c 'import sys, torch; gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA", torch.version.cuda, "|", gpu)'
	nproc
} 2>&1 | tee "$OUT/machine.txt"

if [[ $PART == all || $PART == setup || $PART == ray ]]; then
	echo "== setup: what .whl/ carries, into $SITE" | tee -a "$OUT/setup.log"
	install_carried 2>&1 | tee -a "$OUT/setup.log"
	echo "== setup: exit status ${PIPESTATUS[0]} at $SECONDS s" | tee -a "$OUT/setup.log"
fi
if [[ $PART == all || $PART == ray ]]; then
	part ray.log 200 "$PY" bench/ray_gpu.py "${RAY_ARGS[@]}" || ray_logs >>"$OUT/ray.log"
fi
if [[ $PART == all || $PART == default ]]; then
	part default.log 60 "$PY" bench/train_step.py "${STEP_ARGS[@]}" "${SMALL[@]}"
	part default.log 60 "$PY" bench/train_step.py "${STEP_ARGS[@]}" "${LARGE[@]}"
fi
if [[ $PART == all || $PART == compiled ]]; then
	part compiled.log 150 "$PY" bench/train_step.py --compile "${STEP_ARGS[@]}" "${LARGE[@]}"
	part compiled.log 130 "$PY" bench/train_step.py --compile "${STEP_ARGS[@]}" "${SMALL[@]}"
fi
if [[ $PART == all || $PART == autotune ]]; then
	if [[ $PART == autotune ]] || ((TOTAL - SECONDS >= 240)); then
		part autotune.log 280 "$PY" bench/train_step.py --compile --compile-mode max-autotune "${STEP_ARGS[@]}" "${LARGE[@]}"
	else
		echo "== autotune: skipped, $((TOTAL - SECONDS)) s left of ${TOTAL}" | tee -a "$OUT/autotune.log"
	fi
fi

# The figures alone, one JSON line each; the targets of item 3 and the compile's break-even from them.
grep -h '^#' "$OUT"/*.log >"$OUT/kernels.txt" 2>/dev/null
grep -h '^{"impl"' "$OUT"/*.log 2>/dev/null | grep -v '"impl": "kernel_table"' >"$OUT/figures.jsonl.tmp"
"$PY" - "$OUT/figures.jsonl.tmp" <<'EOF' >>"$OUT/figures.jsonl.tmp"
import json, sys

lines = [json.loads(line) for line in open(sys.argv[1])]
steps = [l for l in lines if l["impl"] == "gan_core" and "ratio_to_reference" in l]  # train_step.py's own
targets = {(1024, True): 15.0, (1024, False): 12.0, (64, True): 8.0, (64, False): 7.0}  # issue 47, item 3
for l in steps:
    target = targets.get((l["batch"], l["compiled"]))
    if target is not None:
        path = f"compiled ({l['compile_mode']})" if l["compiled"] else "default"
        print(json.dumps({"impl": "target", "batch": l["batch"], "path": path, "ratio_to_reference": l["ratio_to_reference"], "target": target, "met": l["ratio_to_reference"] >= target}))
for c in (l for l in steps if l["compiled"]):
    d = next((l for l in steps if not l["compiled"] and l["batch"] == c["batch"]), None)
    if d is None:
        continue
    # A compiled run pays `extra` seconds once (its first steps: compilation) and saves `saving` a step.
    extra = c["warmup_s"] - d["warmup_s"] * c["warmup_steps"] / d["warmup_steps"]
    saving = c["batch"] / d["images_per_s"] - c["batch"] / c["images_per_s"]
    print(json.dumps({"impl": "compile_break_even", "batch": c["batch"], "compile_mode": c["compile_mode"], "extra_first_steps_s": round(extra, 2), "saving_ms_per_step": round(1e3 * saving, 4), "break_even_steps": round(extra / saving) if saving > 0 else None}))
EOF
mv "$OUT/figures.jsonl.tmp" "$OUT/figures.jsonl"
echo "== kernel tables"
cat "$OUT/kernels.txt"
echo "== figures"
cat "$OUT/figures.jsonl"
