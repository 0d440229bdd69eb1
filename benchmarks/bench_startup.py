"""Start-up cost: `import chiltepin` and `chiltepin --help` vs `import parsl`.

Each command runs in a fresh interpreter, repeatedly; prints the median wall time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = str(Path(sys.executable).parent / "chiltepin")


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    py = sys.executable
    figures = {
        "python -c pass": wall([py, "-c", "pass"], args.repeat),
        "import chiltepin": wall([py, "-c", "import chiltepin"], args.repeat),
        "chiltepin --help": wall([CLI, "--help"], args.repeat),
        "import parsl": wall([py, "-c", "import parsl"], max(3, args.repeat // 3)),
    }
    print(f"start-up (median wall of {args.repeat} runs)")
    for name, seconds in figures.items():
        print(f"  {name:18s}: {seconds * 1000:7.1f} ms")
    ratio = figures["chiltepin --help"] / figures["import parsl"]
    print(f"  ratio chiltepin --help / import parsl: {ratio:.3f}  (target: --help < 150 ms)")
    return figures


if __name__ == "__main__":
    main()
