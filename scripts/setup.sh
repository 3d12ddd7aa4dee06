#!/usr/bin/env bash
# Create .venv and install the studio into it. torch 2.13.0 goes in first so that nothing that depends on it
# pulls a different build (a CPU-only machine gets the CPU wheel it has; a GPU workstation gets PyPI's CUDA build).
# `eval` (lm-evaluation-harness) is always installed: the Evaluate tab's benchmarks run through it.
# Extra groups: EXTRAS="dev,trackers" bash scripts/setup.sh (`dev` is what the tests need, PyAV of the `multimodal`
# extra included, so mp4 and mp3 media are tested too).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "torch==2.13.0"
EXTRA_GROUPS="bitsandbytes,eval${EXTRAS:+,$EXTRAS}"
"${PIP[@]}" -c scripts/constraints.txt -e ".[${EXTRA_GROUPS}]"
echo "setup: done (.venv, extras: ${EXTRA_GROUPS})"
