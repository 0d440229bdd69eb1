"""A small workflow on the built-in ``local`` resource: Python, bash and join tasks.

Run: python examples/hello_workflow.py [--site NAME] [--executor NAME]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from chiltepin import Workflow
from chiltepin.runs import show_progress
from chiltepin.tasks import bash_task, join_task, python_task


@python_task
def square(x: int) -> int:
    return x * x


@python_task
def total(inputs=()) -> int:
    return sum(inputs)


@join_task
def sum_of_squares(n: int):
    return total(inputs=[square(i) for i in range(n)])


@bash_task
def host_report(stdout=None) -> str:
    return "echo ran on $(hostname) as $(id -un)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--site", help="site profile (default: the built-in local resource)")
    parser.add_argument("--executor", default="local", help="resource to run tasks on")
    args = parser.parse_args()
    show_progress()  # each block's life (submitted, pending and why, running...) on stderr
    out = Path(tempfile.mkdtemp(prefix="chiltepin-hello-")) / "host.txt"
    try:
        with Workflow(site=args.site, include=[args.executor]):
            print("sum of squares 0..9 =", sum_of_squares(10).result())
            host_report(stdout=str(out), executor=args.executor).result()
            print(out.read_text().strip())
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
