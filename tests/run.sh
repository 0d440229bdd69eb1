#!/usr/bin/env bash
# Run the whole test suite. The session fixtures install and start what the tests need
# (Slurm cluster, podman and a registry, redis) from Debian packages on loopback.
#
# Three lanes run at once, each a pytest of its own (conftest.py picks the tests):
# `cluster`, the tests on the Slurm cluster or in containers (one cluster and one podman
# store per machine, so one lane), and the others split in two, `services` (agent
# services, exchanges, endpoints, the monitor) and `local`. Each of the latter keeps
# about one core busy; `cluster` mostly waits on Slurm. Their lines are prefixed with the
# lane's name; each prints its 15 slowest tests. Arguments go to every pytest; Ctrl-C
# reaches them all (one process group), and each tears its fixtures down.
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

if [[ "${CHILTEPIN_TEST_LANES:-3}" == 1 ]]; then
    exec "${pytest[@]}" "$@"
fi

lane() {
    # The cluster lane mostly waits on Slurm jobs, on its critical path: it goes first
    # for the CPU (the Slurm daemons it starts too), the others take what is left.
    local nice=()
    if [[ "$1" != cluster ]]; then nice=(nice -n 5); fi
    # Python writes its lines as they come; sed prefixes each one as it arrives.
    CHILTEPIN_TEST_LANE="$1" PYTHONUNBUFFERED=1 "${nice[@]}" "${pytest[@]}" "${@:2}" 2>&1 \
        | sed -u "s/^/[$1] /"
}

LANES=(cluster services local)
start=$SECONDS
pids=()
for name in "${LANES[@]}"; do
    lane "$name" "$@" &
    pids+=($!)
done
statuses=()
summary=""
for i in "${!pids[@]}"; do
    code=0
    wait "${pids[i]}" || code=$?
    statuses+=("$code")
    summary+="${LANES[i]} lane exit ${code}, "
done
echo "tests/run.sh: ${summary}$((SECONDS - start)) s in all"
# 5 is "no tests collected": a selection (a file, -k) that only some lanes have; it
# counts only when every lane says so. Otherwise the first lane that failed decides.
status=5
for code in "${statuses[@]}"; do
    if [[ "$code" != 5 && ("$status" == 5 || "$status" == 0) ]]; then
        status=$code
    fi
done
exit "$status"
