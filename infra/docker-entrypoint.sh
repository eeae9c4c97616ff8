#!/bin/sh
# Entry point of the ganpipe image.
#
# A command that starts with a program on PATH runs as it is, so the same image serves
#   ray start --head ...   mlflow server ...   prefect worker start ...   bash
# and KubeRay or a Prefect worker can set their own commands. Anything else goes to the
# CLI: `docker run IMAGE train --preset ring` runs `ganpipe train --preset ring`.
set -e

if [ "$#" -gt 0 ] && command -v -- "$1" >/dev/null 2>&1; then
    exec "$@"
fi
exec ganpipe "$@"
