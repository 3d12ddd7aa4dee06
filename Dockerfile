# The fine-tuning studio in a container: `studio launch` on port 7860, `studio api` on port 8000.
#
# CPU (default):  docker build -t llm-studio .
# NVIDIA GPU:     docker build -t llm-studio:cuda \
#                   --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#                   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#                   --build-arg EXTRAS=eval,multimodal,liger .
# Run with compose.yaml (`docker compose up`), or see docs/deployment.md.

ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Where torch comes from: PyTorch's CPU wheels by default; a CUDA index (or https://pypi.org/simple) for GPUs.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Optional groups from pyproject.toml, comma-separated (e.g. "liger,deepspeed,metrics"). By default the benchmarks
# (lm-evaluation-harness) and the FFmpeg-backed video and audio formats.
ARG EXTRAS="eval,multimodal"
# The user the studio runs as; match your own uid so bind-mounted data/ and saves/ stay writable.
ARG USER_UID=1000

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH}

# python:*-slim ships Python; CUDA images do not, so it comes from apt there (Ubuntu 24.04: Python 3.12).
# Ubuntu images also bring a user with uid 1000, which gives way to ours.
# hadolint ignore=DL3008
RUN set -eux; \
    if ! command -v python3 >/dev/null 2>&1; then \
        apt-get update; \
        apt-get install -y --no-install-recommends python3 python3-venv; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv "${VIRTUAL_ENV}"; \
    existing="$(getent passwd "${USER_UID}" | cut -d: -f1 || true)"; \
    if [ -n "${existing}" ]; then userdel "${existing}"; fi; \
    useradd --create-home --uid "${USER_UID}" --shell /bin/bash studio

WORKDIR /app

# Dependencies first, so that editing the source does not reinstall them. torch goes in first, from its own index,
# at the version scripts/constraints.txt pins; the constraints keep that build while the rest installs.
COPY pyproject.toml ./
COPY scripts/constraints.txt scripts/constraints.txt
RUN pip install --extra-index-url "${TORCH_INDEX_URL}" -c scripts/constraints.txt torch
RUN python -c 'import sys, tomllib; \
        project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
        optional = project["optional-dependencies"]; \
        extras = [name.strip() for name in sys.argv[1].split(",") if name.strip()]; \
        unknown = sorted(set(extras) - set(optional)); \
        unknown and sys.exit("unknown EXTRAS %s; known groups: %s" % (unknown, ", ".join(sorted(optional)))); \
        print(*project["dependencies"], *(dep for name in extras for dep in optional[name]), sep="\n")' \
        "${EXTRAS}" > /tmp/requirements.txt \
    && pip install -c scripts/constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The source (filtered by .dockerignore), installed in place so that `studio` and `python -m engine` run this copy.
COPY . .
RUN pip install --no-deps -e . \
    && mkdir -p saves workspaces /cache/huggingface \
    && chown -R studio:studio data saves workspaces /cache

# By number, so that the host (and Kubernetes' runAsNonRoot) can tell it is not root.
USER ${USER_UID}
ENV STUDIO_HOME=/app \
    HF_HOME=/cache/huggingface \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    API_HOST=0.0.0.0 \
    API_PORT=8000

# Build the offline demo model now, so the first start (and the first demo run) does not wait for it.
RUN studio demo-model

EXPOSE 7860 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GRADIO_SERVER_PORT', '7860') + '/', timeout=4)"]
CMD ["studio", "launch"]
