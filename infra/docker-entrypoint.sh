#!/bin/sh
# Entry point of the ganpipe image.
#
# A command that starts with a program on PATH runs as it is, so the same image serves
#   ray start --head ...   mlflow server ...   prefect worker start ...   bash
# and KubeRay or a Prefect worker can set their own commands. Anything else goes to the
# CLI: `docker run IMAGE train --preset ring` runs `ganpipe train --preset ring`.
set -e

# `mlflow server --app-name basic-auth` reads where its users live only from a config file,
# and that address holds a database password. So the file is written here, at start and
# outside the image, from MLFLOW_AUTH_DATABASE_URI (a Secret's value); the admin's password
# and the CSRF key MLflow reads from the environment itself. configparser treats % as the
# start of an interpolation, so a URL-encoded password's % is doubled.
# Checking a password costs MLflow a deliberately slow hash: 420 ms a request on 2 cores, 13-20
# ms with the check cached (measured with the integration tests' server). A cached password
# stays valid for MLFLOW_AUTH_CACHE_TTL_S after an out-of-band change; one made through the
# server's API takes effect at once (one worker).
if [ -n "${MLFLOW_AUTH_DATABASE_URI:-}" ] && [ -z "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
    MLFLOW_AUTH_CONFIG_PATH=$(mktemp "${TMPDIR:-/tmp}/mlflow-auth.XXXXXX")
    database_uri=$(printf '%s' "$MLFLOW_AUTH_DATABASE_URI" | sed 's/%/%%/g')
    printf '[mlflow]\ndefault_permission = %s\ndatabase_uri = %s\nadmin_username = %s\nauth_cache_ttl_seconds = %s\n' \
        "${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}" "$database_uri" "${MLFLOW_AUTH_ADMIN_USERNAME:-admin}" \
        "${MLFLOW_AUTH_CACHE_TTL_S:-60}" > "$MLFLOW_AUTH_CONFIG_PATH"
    export MLFLOW_AUTH_CONFIG_PATH
fi

if [ "$#" -gt 0 ] && command -v -- "$1" >/dev/null 2>&1; then
    exec "$@"
fi
exec ganpipe "$@"
