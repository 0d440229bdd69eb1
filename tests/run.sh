#!/usr/bin/env bash
# Run the whole test suite. The session fixtures install and start what the tests need
# (Slurm cluster, podman and a registry, redis) from Debian packages on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
"$VENV/bin/ruff" check chiltepin tests benchmarks examples
"$VENV/bin/python" -m pytest -p no:cacheprovider -rfEs --durations=15 "$@"
