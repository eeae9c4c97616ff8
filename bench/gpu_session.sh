#!/usr/bin/env bash
# Issue #10's checks for a session that is lent a GPU, as one call of the device tool:
#
#   bash bench/gpu_session.sh           # all three parts below, at most about 10 min
#   bash bench/gpu_session.sh speed     # one part: speed, tests or default
#
# gan_core alone runs there: the device image's python3 has torch, numpy, scipy, scikit-learn,
# pyyaml and pytest, but not ray, prefect or mlflow, none of which these parts import. Each part
# has its own time limit and writes its output under $OUT as it goes, so what finished comes
# back even when a later part runs out of time. The order is what matters most first:
#   speed    the compiled step (max-autotune) against the reference at batches 64, 256, 1024:
#            the figures issue #10's targets are about;
#   tests    on a GPU, graphed and compiled runs train the weights the eager run does, and D
#            keeps each source's batch-norm statistics apart (tests/unit/*.py);
#   default  the step as `ganpipe train` runs it without train.compile.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-session}
PY=${PYTHON:-python3}
PART=${1:-all}
case $PART in all | speed | tests | default) ;; *)
	echo "usage: $0 [all|speed|tests|default]; got '$PART'" >&2
	exit 2
	;;
esac
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD

# part NAME SECONDS COMMAND...: runs COMMAND for at most SECONDS, its output to the screen and $OUT/NAME.
part() {
	local name=$1 limit=$2 start=$SECONDS
	shift 2
	echo "== $name (at most ${limit} s): $*"
	timeout --signal=INT --kill-after=20 "$limit" "$@" 2>&1 | tee "$OUT/$name"
	local status=${PIPESTATUS[0]}
	echo "== $name: exit status $status after $((SECONDS - start)) s$([[ $status == 124 ]] && echo ', out of time')"
}

{
	nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
	"$PY" -c 'import sys, torch; gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA", torch.version.cuda, "|", gpu)'
} 2>&1 | tee "$OUT/machine.txt"

if [[ $PART == all || $PART == speed ]]; then
	part speed.log 330 "$PY" bench/train_step.py --compile --compile-mode max-autotune
fi
if [[ $PART == all || $PART == tests ]]; then
	part tests.log 150 "$PY" -m pytest -q -p no:cacheprovider \
		tests/unit/test_cuda_graphs.py tests/unit/test_critic_norm.py tests/unit/test_fast_path.py
fi
if [[ $PART == all || $PART == default ]]; then
	part default.log 100 "$PY" bench/train_step.py
fi
