"""The Ansible playbook, run for real against this machine into a temporary prefix.

converge -> idempotence (second run changed=0) -> verify (the venv's chiltepin, endpoint
files and permissions, globus-compute-endpoint's loader and renderer), plus --check mode,
bad input (fails before anything is written), ansible-lint and --syntax-check.
Needs the ``ansible`` extra (ansible-core, ansible-lint): a failure under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers.infra import REPO, require

ANSIBLE = REPO / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOK = BIN / "ansible-playbook"
LINT = BIN / "ansible-lint"


def have_ansible() -> None:
    require(PLAYBOOK.exists() and LINT.exists(), "ansible (pip install -e '.[ansible]')")


def play(*args: str, extra: dict | None = None, tmp: Path | None = None, check: bool = False):
    cmd = [str(PLAYBOOK), "-i", str(ANSIBLE / "inventories" / "local"), str(ANSIBLE / "site.yml")]
    if extra is not None:
        assert tmp is not None
        vars_file = tmp / f"vars-{uuid.uuid4().hex[:8]}.json"
        vars_file.write_text(json.dumps(extra))
        cmd += ["-e", f"@{vars_file}"]
    cmd += list(args)
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=ANSIBLE)
    if check:
        assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    return out


def recap(out: subprocess.CompletedProcess) -> dict[str, int]:
    match = re.search(r"localhost\s*:\s*(.*)", out.stdout.split("PLAY RECAP")[-1])
    assert match, out.stdout[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def base_vars(root: Path) -> dict:
    return {
        "chiltepin_prefix": str(root / "prefix"),
        "chiltepin_source": str(REPO),
        "compute_endpoint_unit_dir": str(root / "units"),
        "compute_endpoint_executors": ["compute", "service"],
        "chiltepin_image_pull": False,
    }


@pytest.fixture(scope="module")
def registry_image(container_infra):
    """The runtime image in the loopback registry (built and pushed once per session)."""
    return container_infra["CHILTEPIN_REGISTRY_IMAGE"], dict(container_infra)


@pytest.fixture(scope="module")
def converged(tmp_path_factory, registry_image):
    """Converge once into a temporary prefix, then run again for idempotence."""
    have_ansible()
    root = tmp_path_factory.mktemp("ansible")
    extra = base_vars(root)
    ref, env = registry_image
    extra.update(
        chiltepin_image_pull=True,
        chiltepin_site_overrides={
            "container": {
                "runtime": "podman",
                "image": ref,
                "cache_dir": str(root / "images"),
            }
        },
        chiltepin_image_environment={k: v for k, v in env.items() if k.startswith("CONTAINERS_")},
    )
    first = play(extra=extra, tmp=root, check=True)
    second = play(extra=extra, tmp=root, check=True)
    return root, extra, first, second


def test_syntax_check():
    have_ansible()
    for inventory in sorted((ANSIBLE / "inventories").iterdir()):
        out = subprocess.run(
            [str(PLAYBOOK), "--syntax-check", "-i", str(inventory), str(ANSIBLE / "site.yml")],
            capture_output=True,
            text=True,
            cwd=ANSIBLE,
        )
        assert out.returncode == 0, f"{inventory.name}: {out.stdout}{out.stderr}"


def test_ansible_lint_production_profile():
    have_ansible()
    out = subprocess.run(
        [str(LINT), "--offline", "--profile", "production", "site.yml", "roles", "inventories"],
        capture_output=True,
        text=True,
        cwd=ANSIBLE,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-5000:]


def test_every_shipped_profile_has_an_inventory():
    from chiltepin.sites import SiteRegistry

    names = {p.name for p in (ANSIBLE / "inventories").iterdir()}
    assert set(SiteRegistry().names()) <= names
    for name in names:
        text = (ANSIBLE / "inventories" / name / "group_vars" / "all.yml").read_text()
        assert f"chiltepin_site: {name}" in text


def test_roles_have_the_standard_layout():
    for role in ("chiltepin", "chiltepin_image", "compute_endpoint"):
        for part in ("defaults", "tasks", "templates", "handlers", "meta"):
            assert (ANSIBLE / "roles" / role / part).is_dir(), (role, part)
        assert (ANSIBLE / "roles" / role / "meta" / "argument_specs.yml").is_file()


def test_converge_then_second_run_changes_nothing(converged):
    _, _, first, second = converged
    assert recap(first)["changed"] > 0
    assert recap(second)["changed"] == 0, second.stdout[-4000:]
    assert recap(second)["failed"] == 0


def test_verify_installation(converged):
    root, extra, _, _ = converged
    prefix = Path(extra["chiltepin_prefix"])
    chiltepin = prefix / "venv" / "bin" / "chiltepin"
    from chiltepin import __version__

    version = subprocess.run([str(chiltepin), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"chiltepin {__version__}"
    assert (
        (prefix / "venv" / "pyvenv.cfg").read_text().count("include-system-site-packages = false")
    )
    gc = prefix / "globus_compute"
    assert stat.S_IMODE(gc.stat().st_mode) == 0o700
    env = {
        **os.environ,
        "GLOBUS_COMPUTE_USER_DIR": str(gc),
        "CHILTEPIN_SITE_PATH": str(prefix / "etc" / "sites"),
    }
    for executor in ("compute", "service"):
        ep = gc / f"local-{executor}"
        assert stat.S_IMODE(ep.stat().st_mode) == 0o700
        for name in ("config.yaml", "user_config_template.yaml.j2", "user_config_schema.json"):
            assert stat.S_IMODE((ep / name).stat().st_mode) == 0o600, name
        # The installed toolkit checks it with globus-compute-endpoint's loader/renderer ...
        valid = subprocess.run(
            [str(chiltepin), "endpoint", "validate", ep.name],
            capture_output=True,
            text=True,
            env=env,
        )
        assert valid.returncode == 0, valid.stderr
        # ... and so does globus-compute-endpoint's own CLI.
        rendered = subprocess.run(
            [str(prefix / "venv" / "bin" / "globus-compute-endpoint"), "render-user-config"]
            + ["-e", ep.name],
            capture_output=True,
            text=True,
            env=env,
        )
        assert rendered.returncode == 0 and "GlobusComputeEngine" in rendered.stdout
        schema = json.loads((ep / "user_config_schema.json").read_text())
        assert schema["properties"]["executor"]["enum"] == [executor]
        unit = (root / "units" / f"chiltepin-endpoint-{ep.name}.service").read_text()
        assert f"endpoint start {ep.name} --foreground" in unit
        assert f"GLOBUS_COMPUTE_USER_DIR={gc}" in unit
    script = (prefix / "etc" / "chiltepin.sh").read_text()
    assert f"{prefix}/venv/bin" in script


def test_image_pulled_into_the_cache(converged, registry_image):
    root, extra, first, _ = converged
    prefix = Path(extra["chiltepin_prefix"])
    assert "Pull the image" in first.stdout
    env = {**os.environ, **registry_image[1], "CHILTEPIN_SITE_PATH": str(prefix / "etc/sites")}
    where = subprocess.run(
        [str(prefix / "venv/bin/chiltepin"), "image", "path", "--site", "local"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    recorded = (prefix / "etc" / "image.env").read_text()
    assert f"CHILTEPIN_IMAGE_PATH={where.stdout.strip()}" in recorded


def test_check_mode_changes_nothing(converged, tmp_path):
    root, extra, _, _ = converged
    again = play("--check", extra=extra, tmp=root, check=True)
    assert recap(again)["changed"] == 0
    fresh = {**base_vars(tmp_path), "chiltepin_image_pull": False}
    dry = play("--check", extra=fresh, tmp=tmp_path, check=True)
    assert recap(dry)["changed"] > 0
    assert not (tmp_path / "prefix").exists(), "check mode wrote nothing"


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"chiltepin_site": "nosuch"}, "unknown site 'nosuch'"),
        ({"compute_endpoint_executors": ["gpu"]}, "site 'local' has no executor gpu"),
        (
            {"compute_endpoint_start": True},
            "compute_endpoint_start needs Globus client credentials",
        ),
        (
            {"compute_endpoint_ids": {"local-compute": "not-a-uuid"}},
            "must be the UUID of one of",
        ),
    ],
)
def test_bad_input_fails_before_writing(tmp_path, bad, message):
    have_ansible()
    out = play(extra={**base_vars(tmp_path), **bad}, tmp=tmp_path)
    assert out.returncode != 0
    assert message in out.stdout, out.stdout[-3000:]
    assert not (tmp_path / "prefix").exists(), "nothing half-written"


def test_start_reaches_the_globus_boundary(converged):
    """compute_endpoint_start with (fake) client credentials: the secret file is written
    0600 and the real start fails where it must register with Globus, with one line."""
    root, extra, _, _ = converged
    creds = {
        **extra,
        "compute_endpoint_start": True,
        "compute_endpoint_executors": ["compute"],
        # as root, globus-compute-endpoint starts endpoints multi-user only
        "compute_endpoint_multi_user": os.getuid() == 0,
        "compute_endpoint_contact_email": "hpc@example.org",
        "compute_endpoint_client_id": str(uuid.uuid4()),
        "compute_endpoint_client_secret": "not-a-real-secret",
    }
    out = play(extra=creds, tmp=root)
    assert out.returncode != 0
    assert "cannot reach Globus's web services" in out.stdout, out.stdout[-3000:]
    assert "not-a-real-secret" not in out.stdout + out.stderr
    secret = Path(extra["chiltepin_prefix"]) / "etc" / "globus-compute-credentials.env"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    shutil.rmtree(Path(extra["chiltepin_prefix"]) / "globus_compute" / "local-compute")
