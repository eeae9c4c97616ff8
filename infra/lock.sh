#!/usr/bin/env bash
# Writes the lock (infra/constraints.txt): pyproject.toml's ranges resolved afresh in a scratch
# venv, with the CPU build of torch, then `pip freeze`. Usage: infra/lock.sh PYTHON TORCH LOCK
set -euo pipefail
python=$1 torch=$2 lock=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$python" -m venv "$scratch/venv"
pip=("$scratch/venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade pip
"${pip[@]}" install --quiet "$torch"
"${pip[@]}" install --quiet ".[test,server]"
"${pip[@]}" check
{
    echo "# The lock: every package at the version the test suite passed with (Python 3.11, Linux"
    echo "# x86_64). make install, .ci/run and the Dockerfile install from it as pip constraints."
    echo "# Written by \`make lock\` (infra/lock.sh) from pyproject.toml's ranges; edit those, not this."
    echo "# Torch's local suffix (+cpu) is dropped, so that the pin also takes the CUDA builds."
    "${pip[@]}" freeze --exclude ganpipe | sed 's/+cpu$//'
} > "$lock"
echo "wrote $lock: $(grep -vc '^#' "$lock") packages"
