"""Helpers shared by the tests: infrastructure probes, the CLI runner, process checks, and
importable task and agent definitions (Parsl workers unpickle them by reference, so the
tests directory is on their PYTHONPATH). ``conftest.py`` holds fixtures only."""
