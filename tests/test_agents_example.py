"""The README's main job: examples/agents/temperature_forecast.py, as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import processes as P

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agents" / "temperature_forecast.py"


def test_temperature_forecast_example(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,  # a hang guard, not a timing assertion (it takes ~20-35 s here)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Initial stats: {'temperature': 20.0, 'location': 'Boulder, CO'" in out
    # The agent's loop moves the temperature by at most 1 degree every 2 s.
    first = re.search(r"Forecast: Boulder, CO: (sunny|cloudy|rainy|snowy), (-?[\d.]+)°C", out)
    assert first and abs(float(first[2]) - 20.0) <= 1.0, out
    assert re.search(r"Updated stats: \{'temperature': -?[\d.]+", out), out
    # The agent counts each forecast once its task's result is back (the task itself runs
    # on a worker with a copy of the agent's state, so it cannot).
    assert "'forecasts_generated': 0}" in out.split("Forecast: ")[0], out
    assert re.search(r"Updated stats: \{.*'forecasts_generated': 1\}", out), out
    assert re.search(r"Final stats: \{.*'forecasts_generated': 2\}", out), out
    new = re.search(r"New forecast: Boulder, CO: \w+, (-?[\d.]+)°C", out)
    assert new and abs(float(new[1]) - 25.0) <= 1.0, out
    assert out.rstrip().endswith("Done!")
    assert P.wait_until_gone(P.processes_under, tmp_path) == []
