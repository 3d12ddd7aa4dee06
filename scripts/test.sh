#!/usr/bin/env bash
# Set up a fresh machine for the tests and run the whole suite (CI calls exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="dev,galore,badam,gguf,metrics,eval,ray${EXTRAS:+,$EXTRAS}" bash scripts/setup.sh
# Browser tests drive Debian's Chromium (Playwright cannot download browsers here); fonts so CJK, Devanagari and
# emoji render.
BROWSER_PACKAGES=(chromium fonts-wqy-zenhei fonts-noto-color-emoji fonts-lohit-deva)
if ! dpkg -s "${BROWSER_PACKAGES[@]}" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${BROWSER_PACKAGES[@]}" >/dev/null
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
status=0
.venv/bin/python -m pytest -q --durations=15 "$@" || status=$?
exit "$status"
