"""Task functions for tests; importable so Parsl workers can unpickle them."""

from __future__ import annotations

import os

from chiltepin.tasks import bash_task, join_task, python_task


@python_task
def add(a: int, b: int) -> int:
    return a + b


@python_task
def where() -> str:
    """Which resource ran this task (its workers export CHILTEPIN_TEST_RESOURCE)."""
    return os.environ.get("CHILTEPIN_TEST_RESOURCE", "?")


@python_task
def fail(message: str) -> None:
    raise ValueError(message)


@python_task
def declares_nothing(x: int) -> int:
    return x


@python_task
def takes_all(x: int, **kwargs) -> list:
    return sorted(kwargs)


@python_task
def sees_spec(parsl_resource_specification: dict | None = None) -> dict:
    return parsl_resource_specification or {}


@bash_task
def echo(word: str, stdout=None, stderr=None) -> str:
    return f"echo {word}"


@bash_task
def exit_with(code: int) -> str:
    return f"exit {code}"


@join_task
def sum_of_adds(n: int):
    from concurrent.futures import Future

    futures: list[Future] = [add(i, i) for i in range(n)]
    return _total(inputs=futures)


@python_task
def _total(inputs=()) -> int:
    return sum(inputs)


class Scaler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    @python_task
    def scale(self, x: int) -> int:
        return self.factor * x

    @bash_task
    def say(self, stdout=None) -> str:
        return f"echo factor={self.factor}"
