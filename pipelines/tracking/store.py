"""A local MLflow store that a command reads must already be there.

MLflow's SQLite store creates its file and tables on first use. For `ganpipe train` that is the
point; for a command that reads what training made (`promote`, `rollback`, `sample` or
`evaluate` of a models:/ or runs:/ URI), run from another folder or with a mistyped
MLFLOW_TRACKING_URI, it made an empty store there and then said "Registered Model not found",
naming neither. Such commands ask `require_existing_store` first.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.settings import Settings, default_tracking_uri

SQLITE = "sqlite:///"


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///path` URI (relative or, with a fourth slash, absolute)."""
    if not tracking_uri.startswith(SQLITE):
        return None
    path = tracking_uri[len(SQLITE) :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def require_existing_store(settings: Settings) -> None:
    """Raise FileNotFoundError naming the store and how it was chosen when it is a SQLite file
    that does not exist; servers and other stores are left to MLflow."""
    database = sqlite_file(settings.tracking_uri)
    if database is None or database.exists():
        return
    if settings.tracking_uri == default_tracking_uri(settings.home):
        how = (
            f"MLFLOW_TRACKING_URI is unset, so the store is the one in GANPIPE_HOME ({settings.home}). "
            "Run from the folder you trained in, or set MLFLOW_TRACKING_URI or GANPIPE_HOME"
        )
    else:
        how = f"MLFLOW_TRACKING_URI={settings.tracking_uri} names a file that does not exist"
    raise FileNotFoundError(f"no MLflow store at {database.resolve()}: {how}")
