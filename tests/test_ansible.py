"""The Ansible collection noaa_gsl.chiltepin, run for real against this machine.

The collection is built with ``ansible-galaxy collection build`` and installed into an
empty collections path; its playbook ``noaa_gsl.chiltepin.site`` converges a temporary
prefix (once per module: the one virtualenv install of this file), then idempotence
(second run changed=0) -> verify (the venv's chiltepin, endpoint files and permissions,
globus-compute-endpoint's loader and renderer). The checkout's ``ansible/site.yml`` (the
same playbook, imported) then runs on that prefix: --check mode (changed=0), starting
endpoints; plus bad input (fails before anything is written), ansible-lint (production
profile) and --syntax-check.
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
COLLECTION = ANSIBLE / "collections" / "ansible_collections" / "noaa_gsl" / "chiltepin"
ROLES = ("chiltepin", "chiltepin_image", "compute_endpoint")
SITE_PLAYBOOK = "noaa_gsl.chiltepin.site"
BIN = Path(sys.executable).parent
PLAYBOOK = BIN / "ansible-playbook"
GALAXY = BIN / "ansible-galaxy"
LINT = BIN / "ansible-lint"


def have_ansible() -> None:
    require(PLAYBOOK.exists() and LINT.exists(), "ansible (pip install -e '.[ansible]')")


def ansible_env(collections: Path | None = None) -> dict[str, str]:
    """No colours; with ``collections``, that path is the only place collections come from."""
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    if collections is not None:
        env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="0")
    return env


def play(
    *args: str,
    extra: dict | None = None,
    tmp: Path | None = None,
    check: bool = False,
    collections: Path | None = None,
):
    """The checkout's ansible/site.yml, or with ``collections`` the installed collection's
    playbook noaa_gsl.chiltepin.site, on the ``local`` inventory."""
    playbook = SITE_PLAYBOOK if collections is not None else str(ANSIBLE / "site.yml")
    cmd = [str(PLAYBOOK), "-i", str(ANSIBLE / "inventories" / "local"), playbook]
    if extra is not None:
        assert tmp is not None
        vars_file = tmp / f"vars-{uuid.uuid4().hex[:8]}.json"
        vars_file.write_text(json.dumps(extra))
        cmd += ["-e", f"@{vars_file}"]
    cmd += list(args)
    env = ansible_env(collections)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=ANSIBLE)
    if check:
        assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    return out


def recap(out: subprocess.CompletedProcess, host: str = "localhost") -> dict[str, int]:
    match = re.search(rf"^{host}\s*:\s*(.*)", out.stdout.split("PLAY RECAP")[-1], re.M)
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
def collection_tarball(tmp_path_factory) -> Path:
    """``ansible-galaxy collection build`` of the checkout's collection."""
    have_ansible()
    out = tmp_path_factory.mktemp("galaxy-build")
    built = subprocess.run(
        [str(GALAXY), "collection", "build", str(COLLECTION), "--output-path", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=ansible_env(),
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = out.glob("noaa_gsl-chiltepin-*.tar.gz")
    return tarball


@pytest.fixture(scope="module")
def installed_collection(tmp_path_factory, collection_tarball) -> Path:
    """The tarball installed with ``ansible-galaxy collection install`` into an empty
    collections path (returned)."""
    path = tmp_path_factory.mktemp("collections")
    installed = subprocess.run(
        [str(GALAXY), "collection", "install", str(collection_tarball), "-p", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=ansible_env(path),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return path


@pytest.fixture(scope="module")
def converged(tmp_path_factory, registry_image, installed_collection):
    """Converge once into a temporary prefix with the installed collection's playbook,
    then run it again for idempotence."""
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
    first = play(extra=extra, tmp=root, check=True, collections=installed_collection)
    second = play(extra=extra, tmp=root, check=True, collections=installed_collection)
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
    """The collection as built (galaxy.yml and meta/runtime.yml, which an installed copy
    no longer has, roles, playbook) and the checkout's thin playbook and inventories."""
    have_ansible()
    collection = COLLECTION.relative_to(ANSIBLE)
    out = subprocess.run(
        [str(LINT), "--offline", "--profile", "production"]
        + ["site.yml", "inventories", str(collection)],
        capture_output=True,
        text=True,
        cwd=ANSIBLE,
        timeout=600,
        env=ansible_env(ANSIBLE / "collections"),
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-5000:]
    assert "Profile 'production' was required, and it passed" in out.stderr, out.stderr


def test_every_shipped_profile_has_an_inventory_and_travels_with_the_collection():
    from chiltepin.sites import SiteRegistry

    names = {p.name for p in (ANSIBLE / "inventories").iterdir()}
    shipped = set(SiteRegistry([REPO / "site_configs"]).names())
    assert shipped <= names
    for name in names:
        text = (ANSIBLE / "inventories" / name / "group_vars" / "all.yml").read_text()
        assert f"chiltepin_site: {name}" in text
    # One source of truth: the role's profiles are links to site_configs/.
    linked = COLLECTION / "roles" / "chiltepin" / "files" / "site_configs"
    assert {p.stem for p in linked.glob("*.yaml")} == shipped
    for link in linked.iterdir():
        assert link.is_symlink() and link.resolve() == REPO / "site_configs" / link.name


def test_collection_layout_and_version():
    import yaml

    from chiltepin import __version__

    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("noaa_gsl", "chiltepin")
    assert galaxy["version"] == __version__
    defaults = yaml.safe_load((COLLECTION / "roles/chiltepin/defaults/main.yml").read_text())
    assert defaults["chiltepin_version"] == __version__
    assert "requires_ansible" in yaml.safe_load((COLLECTION / "meta/runtime.yml").read_text())
    assert (COLLECTION / "playbooks" / "site.yml").is_file()
    assert not (ANSIBLE / "roles").exists(), "the roles live only in the collection"
    for role in ROLES:
        for part in ("defaults", "tasks", "templates", "handlers", "meta"):
            assert (COLLECTION / "roles" / role / part).is_dir(), (role, part)
        assert (COLLECTION / "roles" / role / "meta" / "argument_specs.yml").is_file()


def test_tarball_installs_roles_playbook_and_profiles(collection_tarball, installed_collection):
    from chiltepin import __version__

    assert collection_tarball.name == f"noaa_gsl-chiltepin-{__version__}.tar.gz"
    listed = subprocess.run(
        [str(GALAXY), "collection", "list", "-p", str(installed_collection)],
        capture_output=True,
        text=True,
        env=ansible_env(installed_collection),
    )
    assert re.search(rf"noaa_gsl\.chiltepin\s+{re.escape(__version__)}", listed.stdout), listed
    root = installed_collection / "ansible_collections" / "noaa_gsl" / "chiltepin"
    assert json.loads((root / "MANIFEST.json").read_text())["collection_info"]["version"] == (
        __version__
    )
    for role in ROLES:
        assert (root / "roles" / role / "tasks" / "main.yml").is_file(), role
    assert (root / "playbooks" / "site.yml").is_file() and (root / "README.md").is_file()
    # the links became copies of the profiles
    for profile in (root / "roles" / "chiltepin" / "files" / "site_configs").iterdir():
        assert not profile.is_symlink()
        assert profile.read_text() == (REPO / "site_configs" / profile.name).read_text()


def test_installed_collection_is_the_only_one_used(installed_collection, tmp_path):
    """With the collections path set, the playbook comes from there and nowhere else."""
    check = [str(PLAYBOOK), "--syntax-check", "-i", str(ANSIBLE / "inventories" / "local")]
    found = subprocess.run(
        [*check, SITE_PLAYBOOK],
        capture_output=True,
        text=True,
        env=ansible_env(installed_collection),
    )
    assert found.returncode == 0, found.stdout + found.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = subprocess.run(
        [*check, SITE_PLAYBOOK], capture_output=True, text=True, env=ansible_env(empty)
    )
    assert missing.returncode != 0 and "could not be found" in missing.stdout + missing.stderr


def test_converge_then_second_run_changes_nothing(converged):
    *_, first, second = converged
    assert recap(first)["changed"] > 0
    assert "noaa_gsl.chiltepin.chiltepin : Install the toolkit" in first.stdout
    assert recap(second)["changed"] == 0, second.stdout[-4000:]
    assert recap(second)["failed"] == 0


def test_verify_installation(converged):
    root, extra, *_ = converged
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
    root, extra, first, *_ = converged
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
    """The checkout's ansible/site.yml in --check mode on the prefix the installed
    collection converged finds nothing to change (same roles, one source); on a fresh
    prefix it reports changes and writes nothing."""
    root, extra, *_ = converged
    again = play("--check", extra=extra, tmp=root, check=True)
    assert recap(again)["changed"] == 0
    fresh = {**base_vars(tmp_path), "chiltepin_image_pull": False}
    dry = play("--check", extra=fresh, tmp=tmp_path, check=True)
    assert recap(dry)["changed"] > 0
    assert not (tmp_path / "prefix").exists(), "check mode wrote nothing"


#: Bad input -> the message it must fail with, before anything is written.
BAD_INPUT = {
    "unknown_site": ({"chiltepin_site": "nosuch"}, "unknown site 'nosuch'"),
    "missing_executor": (
        {"compute_endpoint_executors": ["gpu"]},
        "site 'local' has no executor gpu",
    ),
    "start_without_credentials": (
        {"compute_endpoint_start": True},
        "compute_endpoint_start needs Globus client credentials",
    ),
    "endpoint_id_not_a_uuid": (
        {"compute_endpoint_ids": {"local-compute": "not-a-uuid"}},
        "must be the UUID of one of",
    ),
}


@pytest.fixture(scope="module")
def bad_input_run(tmp_path_factory):
    """One run of the checkout's playbook over one host per case of BAD_INPUT (each is
    this machine, with its own prefix and its own bad setting): each fails on its own."""
    have_ansible()
    root = tmp_path_factory.mktemp("bad-input")
    hosts = {
        case: {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            **base_vars(root / case),
            **bad,
        }
        for case, (bad, _) in BAD_INPUT.items()
    }
    inventory = root / "inventory.json"
    inventory.write_text(json.dumps({"chiltepin": {"hosts": hosts}}))
    cmd = [str(PLAYBOOK), "-i", str(inventory), str(ANSIBLE / "site.yml")]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=900, env=ansible_env(), cwd=ANSIBLE
    )
    return root, out


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_fails_before_writing(bad_input_run, case):
    root, out = bad_input_run
    assert out.returncode != 0
    # "fatal: [host]: FAILED! => {...}", or "failed: [host] (item=...) => ..." in a loop
    fatal = re.findall(rf"^(?:fatal|failed): \[{case}\].*?=> (.*)$", out.stdout, re.M)
    assert len(fatal) == 1, out.stdout[-3000:]
    assert BAD_INPUT[case][1] in fatal[0], fatal[0]
    assert recap(out, case)["failed"] == 1
    assert not (root / case / "prefix").exists(), "nothing half-written"


def test_start_reaches_the_globus_boundary(converged):
    """compute_endpoint_start with (fake) client credentials: the secret file is written
    0600 and the real start fails where it must register with Globus, with one line.
    Only the endpoint role runs (its tag), as a user re-running one part would."""
    root, extra, *_ = converged
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
    out = play("--tags", "compute_endpoint", extra=creds, tmp=root)
    assert out.returncode != 0
    assert "cannot reach Globus's web services" in out.stdout, out.stdout[-3000:]
    assert "not-a-real-secret" not in out.stdout + out.stderr
    secret = Path(extra["chiltepin_prefix"]) / "etc" / "globus-compute-credentials.env"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    shutil.rmtree(Path(extra["chiltepin_prefix"]) / "globus_compute" / "local-compute")
