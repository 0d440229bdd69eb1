"""Where things are, and the rule for missing components (skip locally, fail under CI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
BIN = Path(sys.executable).parent
EXAMPLES = REPO / "examples" / "agents"
SITES = TESTS / "sites"  # test-only site profiles (testcluster-podman, -charliecloud)
CONTAINER_LABEL = "chiltepin.run"  # every container a Workflow starts carries it

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(available: bool, what: str) -> None:
    """Skip when a component is missing, except under CI=true, where that is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} not available")


def labelled_containers() -> list[str]:
    """Containers (any state) in the current podman store that a Workflow started."""
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label={CONTAINER_LABEL}", "--format", "{{.ID}}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout.split()
