#!/usr/bin/env bash
# Run the whole test suite. The session fixtures install and start what the tests need
# (Slurm cluster, podman and a registry, redis) from Debian packages on loopback.
#
# Two lanes run at once, each a pytest of its own (conftest.py picks the tests): `cluster`,
# the tests on the Slurm cluster or in containers (one cluster and one podman store per
# machine, so one lane), and `local`, all the others. Their lines are prefixed with the
# lane's name; each prints its 15 slowest tests. Arguments go to both pytests; Ctrl-C
# reaches both (one process group), and each tears its fixtures down.
# CHILTEPIN_TEST_LANES=1 runs the whole suite in one pytest instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
"$VENV/bin/ruff" check chiltepin tests benchmarks examples
# The checkout's bytecode, once: the suite starts Python over a thousand times (CLIs,
# agents, workers) and some machines set PYTHONDONTWRITEBYTECODE, which would make every
# one compile the toolkit again (__pycache__ is ignored by git).
"$VENV/bin/python" -m compileall -q chiltepin tests examples benchmarks >/dev/null
pytest=("$VENV/bin/python" -m pytest -p no:cacheprovider -rfEs --durations=15)

if [[ "${CHILTEPIN_TEST_LANES:-2}" == 1 ]]; then
    exec "${pytest[@]}" "$@"
fi

lane() {
    # Python writes its lines as they come; sed prefixes each one as it arrives.
    CHILTEPIN_TEST_LANE="$1" PYTHONUNBUFFERED=1 "${pytest[@]}" "${@:2}" 2>&1 \
        | sed -u "s/^/[$1] /"
}

start=$SECONDS
lane cluster "$@" &
cluster=$!
lane local "$@" &
local_lane=$!
status=0
wait "$cluster" || status=$?
local_status=0
wait "$local_lane" || local_status=$?
echo "tests/run.sh: cluster lane exit ${status}, local lane exit ${local_status}," \
    "$((SECONDS - start)) s in all"
# 5 is "no tests collected": a selection (a file, -k) that only one lane has.
if ((status == 5 && local_status != 5)); then status=0; fi
if ((local_status == 5 && status != 5)); then local_status=0; fi
((status != 0)) && exit "$status"
exit "$local_status"
