#!/usr/bin/env bash
# Set up a fresh machine for the tests and run the whole suite (CI calls exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="dev,galore,badam${EXTRAS:+,$EXTRAS}" bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
status=0
.venv/bin/python -m pytest -q --durations=15 "$@" || status=$?
exit "$status"
