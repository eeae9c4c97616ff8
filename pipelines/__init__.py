"""The pipeline around gan_core: storage, Ray, MLflow and Prefect, and the `ganpipe` CLI.

The folders are the layers, each importing only those below it (docs/architecture.md; the
contract is in pyproject.toml and `lint-imports` checks it):

    cli/                      the `ganpipe` command
    flows/  benchmarks/       Prefect flows; the literature's benchmarks
    tune/                     hyperparameter search on Ray Tune
    train/                    training on Ray Train
    registry/  evaluate/      model versions and promotion; evaluation, pictures
    tracking/  storage/  cluster/   MLflow; URIs, datasets, leases; reaching Ray
    runtime/                  waiting out outages, fault kinds, signals, log filters
    settings.py               where the services are, from the environment
"""
