#!/usr/bin/env bash
# Run the whole test suite. The session fixtures install and start what the tests need
# (Slurm cluster, podman and a registry, redis) from Debian packages on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
"$VENV/bin/ruff" check chiltepin tests benchmarks examples
# Two pytest-xdist workers: one runs the tests on the Slurm cluster and in containers, in
# order (one group, first; see conftest.py), the other the other modules, a module at a
# time. CHILTEPIN_TEST_WORKERS=0 runs the whole suite in this one process.
"$VENV/bin/python" -m pytest -p no:cacheprovider -rfEs --durations=15 \
    -n "${CHILTEPIN_TEST_WORKERS:-2}" --dist loadgroup --no-loadscope-reorder "$@"
