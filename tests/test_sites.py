"""Site profiles: shipped profiles, layered lookup, provenance, and every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.cli import run as cli

from chiltepin.config.schema import Resource
from chiltepin.errors import ConfigError
from chiltepin.sites import SiteRegistry, load_site
from chiltepin.sites.paths import shipped_dir
from chiltepin.sites.schema import profile_json_schema

SHIPPED = ["hera", "hercules", "local", "testcluster", "ursa"]


@pytest.fixture
def layers(tmp_path, monkeypatch):
    """An empty site-path layer and user layer; returns (site_path_dir, user_dir)."""
    extra = tmp_path / "layer"
    user = tmp_path / "xdg" / "chiltepin" / "sites"
    extra.mkdir()
    user.mkdir(parents=True)
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(extra))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return extra, user


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def test_shipped_profiles_are_valid_and_resolve():
    registry = SiteRegistry()
    assert registry.names() == SHIPPED
    for name in SHIPPED:
        site = registry.load(name)
        resources = site.resources()
        assert "local" in resources and all(isinstance(r, Resource) for r in resources.values())
    hera = load_site("hera")
    compute = hera.resources(["compute"])["compute"]
    assert (compute.provider, compute.partition, compute.queue) == ("slurm", "hera", "batch")
    assert compute.environment[0] == "module purge"
    assert compute.container and compute.container.runtime == "apptainer"
    mpi = hera.resources(["mpi"])["mpi"]
    assert mpi.mpi and mpi.launcher_for_mpi == "srun"


def test_published_schema_is_current():
    on_disk = json.loads((shipped_dir() / "schema.json").read_text())
    assert on_disk == profile_json_schema(), (
        "regenerate: chiltepin site schema > site_configs/schema.json"
    )


def test_template_validates_once_copied(layers):
    extra, _ = layers
    shutil.copy(shipped_dir() / "template.yaml", extra / "mysite.yaml")
    site = load_site("mysite")
    assert site.executor_names == ["service", "compute", "mpi"]
    assert site.resources(["mpi"])["mpi"].container is None  # opted out
    assert site.resources(["compute"])["compute"].container.runtime == "apptainer"


def test_later_layer_replaces_a_whole_site(layers):
    extra, _ = layers
    write(extra, "hera", "scheduler: localhost\nexecutors:\n  only: {}\n")
    site = load_site("hera")
    assert site.executor_names == ["only"] and site.profile.container is None


def test_user_layer_deep_merges_and_provenance_names_it(layers):
    _, user = layers
    override = write(user, "hera", "merge: true\ndefaults:\n  account: myproj\n")
    site = load_site("hera")
    resource, where = site.resolve("compute")
    assert resource.account == "myproj" and resource.partition == "hera"
    assert where["account"][1] == str(override)
    assert where["partition"][1].endswith("site_configs/hera.yaml")
    out = cli("site", "show", "hera", "--resolved")
    assert out.returncode == 0 and f'account: "myproj"  # defaults ({override}:3)' in out.stdout


def test_executor_override_of_container_and_opt_out(layers):
    _, user = layers
    write(
        user,
        "hera",
        "merge: true\nexecutors:\n  compute:\n    container:\n      options: [--cleanenv]\n"
        "  mpi:\n    container: false\n",
    )
    site = load_site("hera")
    assert site.resources(["compute"])["compute"].container.options == ["--cleanenv"]
    assert site.resources(["mpi"])["mpi"].container is None


def test_detect_by_hostname_patterns(layers):
    registry = SiteRegistry()
    assert registry.detect(["hfe07"]) == "hera"
    assert registry.detect(["hercules-login-2"]) == "hercules"
    assert registry.detect(["nowhere"]) is None


def test_workflow_by_site_name(tmp_path, no_leftovers):
    from helpers import tasks as ts

    from chiltepin import Workflow

    with Workflow(site="local", include=["compute"], run_dir=tmp_path / "run"):
        assert ts.add(20, 22, executor="compute").result(timeout=60) == 42


def test_workflow_with_both_site_and_config_is_an_error():
    from chiltepin import Workflow

    with pytest.raises(ConfigError, match="either a config or a site"):
        Workflow({"x": {}}, site="local")


# ---- bad input: each gives one clear message, and exit code 2 from the CLI ----


def bad_site(name: str, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_site(name)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    out = cli("site", "validate", name)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    return message


def test_unknown_site_lists_known_ones(layers):
    bad_site("herra", "unknown site 'herra'", "did you mean 'hera'", "testcluster")


def test_unknown_executor_name():
    with pytest.raises(ConfigError, match="included executor 'compte'.*did you mean 'compute'"):
        load_site("hera").resources(["compte"])
    from chiltepin import Workflow

    with pytest.raises(ConfigError, match="site 'hera'.*'gpu'"):
        Workflow(site="hera", include=["gpu"])


def test_misspelled_key(layers):
    extra, _ = layers
    path = write(extra, "bad", "executors:\n  compute:\n    partiton: x\n")
    bad_site("bad", f"{path}:3", "executor 'compute'", "key 'partiton'", "did you mean 'partition'")


def test_misspelled_top_level_and_defaults_keys(layers):
    extra, _ = layers
    path = write(extra, "bad", "schedular: slurm\nexecutors:\n  c: {}\n")
    bad_site("bad", f"{path}:1", "key 'schedular'", "did you mean 'scheduler'")
    path = write(extra, "bad", "defaults:\n  acount: x\nexecutors:\n  c: {}\n")
    bad_site("bad", f"{path}:2", "section 'defaults'", "key 'acount'", "did you mean 'account'")


def test_partition_given_as_a_list(layers):
    extra, _ = layers
    write(extra, "bad", "executors:\n  compute:\n    partition: [a, b]\n")
    bad_site("bad", "executor 'compute'", "key 'partition'", "got a list")


def test_negative_nodes(layers):
    extra, _ = layers
    write(extra, "bad", "executors:\n  compute:\n    nodes_per_block: -2\n")
    bad_site("bad", "executor 'compute'", "key 'nodes_per_block'", "must be > 0")


def test_walltime_1h(layers):
    extra, _ = layers
    write(extra, "bad", "executors:\n  compute:\n    walltime: 1h\n")
    bad_site("bad", "executor 'compute'", "key 'walltime'", "HH:MM:SS")


def test_walltime_1h_in_defaults_names_defaults(layers):
    extra, _ = layers
    path = write(extra, "bad", "defaults:\n  walltime: 1h\nexecutors:\n  compute: {}\n")
    bad_site("bad", f"{path}:2", "section 'defaults'", "key 'walltime'")


def test_yaml_syntax_error_reports_line(layers):
    extra, _ = layers
    path = write(extra, "bad", "executors:\n  compute:\n    partition: x\n   bad: y\n")
    bad_site("bad", "YAML syntax error", f"{path}:4")


def test_empty_file(layers):
    extra, _ = layers
    path = write(extra, "bad", "")
    bad_site("bad", str(path), "site profile is empty")


def test_no_executors(layers):
    extra, _ = layers
    write(extra, "bad", "scheduler: slurm\n")
    bad_site("bad", "key 'executors'", "missing")


def test_override_of_a_site_that_does_not_exist(layers):
    _, user = layers
    path = write(user, "nosuch", "merge: true\ndefaults:\n  account: x\n")
    bad_site("nosuch", f"{path}:1", "merges into site 'nosuch'", "no earlier layer")


def test_provider_key_on_wrong_scheduler_after_inheritance_is_ignored(layers):
    """As in resource configs (chiltepin 0.1.x compatibility): one warning, then ignored."""
    from chiltepin.errors import ConfigWarning

    extra, _ = layers
    path = write(extra, "odd", "scheduler: pbspro\nexecutors:\n  c:\n    partition: x\n")
    with pytest.warns(ConfigWarning) as caught:
        resource = load_site("odd").resources(["c"])["c"]
    assert resource.provider == "pbspro" and resource.partition is None
    messages = {str(w.message) for w in caught}
    assert len(messages) == 1, messages
    message = messages.pop()
    for fragment in (f"{path}:4", "executor 'c'", "key 'partition'", "provider 'pbspro'"):
        assert fragment in message, message
    out = cli("site", "validate", "odd")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("chiltepin: warning:") == 1 and "key 'partition'" in out.stderr


def test_name_must_match_file(layers):
    extra, _ = layers
    write(extra, "bad", "name: other\nexecutors:\n  c: {}\n")
    bad_site("bad", "profile says name 'other'", "bad.yaml")


def test_validate_file_and_all_from_cli(layers):
    assert cli("site", "validate").returncode == 0
    out = cli("site", "validate", str(shipped_dir() / "hera.yaml"))
    assert out.returncode == 0 and "valid site 'hera'" in out.stdout
    assert cli("site", "show", "nope").returncode == 2
    listing = cli("site", "list")
    assert listing.returncode == 0 and "testcluster" in listing.stdout
