"""The pipeline: storage, Ray, MLflow and Prefect around gan_core, and the `ganpipe` CLI."""
