"""Images for real: ``chiltepin image pull`` from the loopback registry into an empty
podman store and into a Charliecloud directory image; list, path, failures; and the
signal path that stops a worker's container when the batch system kills its job.

The session fixture ``pulled_image`` (conftest.py) builds the image from
containers/Dockerfile (tests/infra/containers.sh), pushes it to the loopback registry and
runs the first two pulls through the real CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.cli import run as chiltepin_cli

from chiltepin import __version__
from chiltepin.containers.oci import RUN_WRAPPER

pytestmark = pytest.mark.podman


def fields(out: subprocess.CompletedProcess) -> list[str]:
    """The result line of `chiltepin image pull`: runtime, image, digest, state."""
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1].split("\t")


def registry_digest(image: str) -> str:
    out = subprocess.run(
        ["skopeo", "--registries-conf", os.environ["CONTAINERS_REGISTRIES_CONF"], "inspect",
         "--format", "{{.Digest}}", f"docker://{image}"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_pull_into_an_empty_store_then_a_no_op(pulled_image):
    assert pulled_image.store_before == [], "the pull test must start from an empty store"
    runtime, image, digest, state = fields(pulled_image.first)
    assert (runtime, image) == ("podman", pulled_image.image)
    assert state.startswith("pulled in") and digest == registry_digest(image)
    assert "Copying blob" in pulled_image.first.stderr  # podman's progress is shown
    again = fields(pulled_image.second)
    assert again == ["podman", image, digest, "already present (same digest), nothing pulled"]
    assert "Copying blob" not in pulled_image.second.stderr
    assert pulled_image.second_seconds < pulled_image.first_seconds


def test_list_and_path(pulled_image):
    env = pulled_image.env
    listing = chiltepin_cli("image", "list", "--site", "testcluster-podman", env=env)
    assert listing.returncode == 0, listing.stderr
    mine = [line for line in listing.stdout.splitlines() if line.startswith("*")]
    assert len(mine) == 1 and pulled_image.image in mine[0], listing.stdout
    path = chiltepin_cli("image", "path", "--site", "testcluster-podman", env=env)
    assert (path.returncode, path.stdout.strip()) == (0, pulled_image.image)
    missing = chiltepin_cli(
        "image", "path", "--runtime", "podman", "localhost:5000/noaa-gsl/chiltepin:0.0.0", env=env
    )
    assert missing.returncode == 1 and "not there yet" in missing.stderr


def test_pull_of_a_missing_image_fails_with_exit_1(pulled_image):
    out = chiltepin_cli(
        "image", "pull", "-q", "--runtime", "podman", "localhost:5000/noaa-gsl/nothing:1",
        env=pulled_image.env,
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("chiltepin: error: --runtime podman: podman pull"), last


def test_charliecloud_pull_makes_a_directory_image(charliecloud_image, pulled_image):
    first, second = charliecloud_image
    runtime, path, digest, state = fields(first)
    assert runtime == "charliecloud"
    assert digest == registry_digest(pulled_image.image)
    assert state.startswith(("pulled in", "already present"))  # kept from an earlier run
    assert fields(second) == [
        runtime,
        path,
        digest,
        "already present (same digest), nothing pulled",
    ]
    image = Path(path)
    cache = Path(os.environ["CHILTEPIN_TEST_IMAGE_CACHE"])
    assert image == cache / f"chiltepin_{__version__}"
    assert (image / "opt/chiltepin/IMAGE").read_text().strip() == __version__
    assert "PATH=/opt/chiltepin/bin:" in (image / "ch/environment").read_text()
    assert not list(cache.glob("*.part-*"))


def test_batch_kill_sweep_stops_the_container(pulled_image, tmp_path, no_containers_left):
    """A batch system cancels a job by signalling every process of the step at once; the
    wrapper (oci.RUN_WRAPPER) must still stop the container, which is not one of them."""
    wrapper = tmp_path / "podman-run.sh"
    wrapper.write_text(RUN_WRAPPER)
    label = f"chiltepin.run=sweep-{os.getpid()}"
    proc = subprocess.Popen(
        ["bash", str(wrapper), "podman", "run", "--rm", "--init", "--label", label,
         pulled_image.image, "python3", "-c", "import time; time.sleep(600)"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _running(label) and time.monotonic() < deadline:
            assert proc.poll() is None, "the container command ended early"
            time.sleep(0.2)
        assert _running(label), "the container never started"
        os.killpg(proc.pid, signal.SIGCONT)  # Slurm's order: SIGCONT, SIGTERM to all
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _present(label) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _present(label), "the container outlived its killed job step"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _present(label: str, running_only: bool = False) -> list[str]:
    args = ["podman", "ps", "-q", "--filter", f"label={label}"]
    if not running_only:
        args.insert(2, "-a")
    return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout.split()


def _running(label: str) -> list[str]:
    return _present(label, running_only=True)
