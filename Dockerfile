# syntax=docker/dockerfile:1
#
# One image for everything that runs ganpipe code: the `ganpipe` CLI, the Ray head and
# workers, the Prefect worker and the flow runs it starts, and (it has mlflow and prefect
# installed) the MLflow and Prefect servers of infra/.
#
#   docker build -t ganpipe:0.1.0-cpu .                                    # CPU build of torch
#   docker build -t ganpipe:0.1.0-cu128 --build-arg TORCH_VARIANT=cu128 .  # CUDA 12.8 build
#
# TORCH_VARIANT names a PyTorch wheel index, https://download.pytorch.org/whl/<variant>:
# `cpu`, or a CUDA variant that PyTorch publishes for TORCH_VERSION (cu126, cu128, ...).
# The CUDA wheels carry their own CUDA runtime; a GPU host needs only the NVIDIA driver and
# the NVIDIA container toolkit. Tag the image with the variant: infra/ expects
# ganpipe:<version>-<variant>.
#
#   docker run --rm ganpipe:0.1.0-cpu list presets        # arguments go to `ganpipe`
#   docker run --rm ganpipe:0.1.0-cpu ray --version       # unless they start with a program

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build

# The same torch release the tests run (the Makefile's TORCH_CPU pin).
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && pip install --upgrade pip

# torch first, from PyTorch's own index, so that the install below finds it already satisfied
# instead of pulling PyPI's default build.
RUN pip install --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" "torch==${TORCH_VERSION}"

# Dependencies next, at the lock's versions (infra/constraints.txt, what the tests ran). Only the project
# metadata and empty packages are copied here, so this heavy layer is rebuilt when
# pyproject.toml or the pins change, not on every code change.
WORKDIR /src
COPY infra/constraints.txt /src/constraints.txt
COPY pyproject.toml README.md /src/
RUN mkdir gan_core pipelines \
    && touch gan_core/__init__.py pipelines/__init__.py \
    && pip install --constraint constraints.txt ".[server]" \
    && rm -rf gan_core pipelines build

# Then the code itself, over the placeholder packages.
COPY gan_core /src/gan_core
COPY pipelines /src/pipelines
RUN pip install --no-deps --force-reinstall . \
    && pip check \
    && ganpipe list presets

# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

# wget: KubeRay's exec probes on older operator versions call it; bash is already there.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/*

# A fixed, non-root user: the Kubernetes manifests run the pods as this uid.
ARG APP_UID=1000
RUN useradd --create-home --uid ${APP_UID} --user-group --shell /bin/bash ganpipe \
    && mkdir -p /home/ganpipe/runs \
    && chown ganpipe:ganpipe /home/ganpipe/runs

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 infra/docker-entrypoint.sh /usr/local/bin/ganpipe-entrypoint

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GANPIPE_HOME=/home/ganpipe/runs

USER ganpipe
WORKDIR /home/ganpipe

# MLflow server, Prefect server, Prefect worker health, Ray GCS, Ray dashboard, Ray client.
EXPOSE 5000 4200 8080 6379 8265 10001

ENTRYPOINT ["ganpipe-entrypoint"]
CMD ["--help"]
