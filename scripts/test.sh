#!/usr/bin/env bash
# Set up from nothing and run every check CI runs: lint, types, the whole test suite.
# Needs only Python 3.11 with pip; as root on Debian it also installs ffprobe (see below).
set -euo pipefail
cd "$(dirname "$0")/.."

# hybrid itself needs no ffprobe (the bundled ffmpeg probes alone), but the tests check that both
# probe paths agree, so get Debian's when we can; without it those tests are skipped, not failed.
if ! command -v ffprobe >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
  else
    echo "note: no ffprobe on PATH: the ffprobe-agreement tests will be skipped" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/ruff check hybrid tests benchmarks
.venv/bin/ruff format --check hybrid tests benchmarks
.venv/bin/mypy
.venv/bin/pytest "$@"
