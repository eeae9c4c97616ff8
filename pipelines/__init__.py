"""The pipeline: storage, Ray, MLflow and Prefect around gan_core, and the `ganpipe` CLI."""

from pipelines.ray_startup_logs import skip_ray_internal_warnings

# Here, because Ray reads the setting once, when it is imported, and every driver (the CLI, a
# Prefect deployment's flow, a notebook) imports this package before it imports Ray.
skip_ray_internal_warnings()
