"""Resource configuration: every validation rule has a bad-input test."""

from __future__ import annotations

import json

import pytest

from chiltepin.config import RemoteResource, Resource, load_resources, resource_json_schema
from chiltepin.errors import ConfigError, ConfigWarning


def bad(config, *fragments):
    with pytest.raises(ConfigError) as info:
        load_resources(config)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    return info.value


def test_builtin_local_always_exists():
    resources = load_resources(None)
    assert list(resources) == ["local"]
    assert resources["local"].provider == "localhost"
    assert resources["local"].max_workers_per_node == 1


def test_config_may_redefine_local():
    resources = load_resources({"local": {"max_workers_per_node": 3}})
    assert resources["local"].max_workers_per_node == 3


def test_kinds_and_providers():
    res = load_resources(
        {
            "htex": {"provider": "slurm", "partition": "compute", "gres": "gpu:2"},
            "mpi": {"provider": "slurm", "mpi": True, "max_mpi_apps": 2},
            "pbs": {"provider": "pbspro", "queue": "main", "mpi": True},
            "remote": {"endpoint": "2f0a8ac8-2a4e-4a4b-9a8a-0d1c6a0d5f4e", "partition": "x"},
        }
    )
    assert isinstance(res["htex"], Resource) and res["htex"].gres == "gpu:2"
    assert res["mpi"].launcher_for_mpi == "srun"
    assert res["pbs"].launcher_for_mpi == "mpiexec"
    assert isinstance(res["remote"], RemoteResource)
    sent = res["remote"].user_endpoint_config
    assert sent["partition"] == "x" and "partition" not in sent["chiltepin_defaults"]


def test_include_selects_and_unknown_include_is_an_error():
    cfg = {"compute": {"provider": "slurm", "partition": "compute"}}
    # local stays available (as in chiltepin 0.1.x), after the selection
    assert list(load_resources(cfg, include=["compute"])) == ["compute", "local"]
    with pytest.raises(ConfigError, match="included executor 'compte'.*did you mean 'compute'"):
        load_resources(cfg, include=["compte"])


def test_misspelled_key_names_file_line_entry_and_suggests(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("compute:\n  provider: slurm\n  partiton: debug\n")
    err = bad(path, f"{path}:3", "executor 'compute'", "key 'partiton'", "did you mean 'partition'")
    assert err.line == 3


def test_wrong_type():
    bad({"c": {"provider": "slurm", "partition": ["a", "b"]}}, "key 'partition'", "got a list")
    bad({"c": {"max_blocks": "2"}}, "key 'max_blocks'", "expected int")
    bad({"c": {"environment": "module load x"}}, "key 'environment'", "expected list")


@pytest.mark.parametrize("key", ["nodes_per_block", "max_blocks", "cores_per_node"])
def test_zero_or_negative_counts(key):
    bad({"c": {"provider": "slurm", key: 0}}, f"key '{key}'", "must be > 0")
    bad({"c": {"provider": "slurm", key: -2}}, f"key '{key}'", "must be > 0")


@pytest.mark.parametrize(
    ("key", "limit"),
    [
        ("nodes_per_block", "1000000"),
        ("max_blocks", "100000"),
        ("init_blocks", "100000"),
        ("max_workers_per_node", "10000"),
        ("cores_per_node", "100000"),
        ("mem_per_node", "1000000"),
        ("gpus_per_node", "1024"),
        ("retries", "1000"),
        ("heartbeat_period", "86400"),
        ("heartbeat_threshold", "86400"),
        ("max_mpi_apps", "10000"),
    ],
)
def test_absurdly_large_counts(key, limit):
    """Far beyond any cluster: refused before a pool tries to start that many workers or
    a scheduler gets a number it overflows on."""
    extra = {"mpi": True} if key == "max_mpi_apps" else {}
    bad({"c": {"provider": "slurm", **extra, key: 10**20}}, f"key '{key}'", f"must be <= {limit}")


@pytest.mark.parametrize("cores", [0.001, 1e-300, 1e300])
def test_cores_per_worker_out_of_range(cores):
    """A tiny share would have a local pool start cores/cores_per_worker workers."""
    bad({"c": {"cores_per_worker": cores}}, "key 'cores_per_worker'", "must be")


def test_negative_blocks_and_block_order():
    bad({"c": {"init_blocks": -1}}, "key 'init_blocks'", "must be >= 0")
    bad({"c": {"min_blocks": 3, "max_blocks": 2}}, "key 'min_blocks'", "larger than max_blocks")


@pytest.mark.parametrize("walltime", ["1h", "60", "01:60:00", "1:00", "100000:00:00"])
def test_malformed_walltime(walltime):
    bad({"c": {"provider": "slurm", "walltime": walltime}}, "key 'walltime'", "HH:MM:SS")


def ignored(config, key, *fragments):
    """``config`` loads with exactly one ConfigWarning, naming ``key``; return the resources."""
    with pytest.warns(ConfigWarning) as caught:
        resources = load_resources(config)
    messages = [str(w.message) for w in caught if issubclass(w.category, ConfigWarning)]
    assert len(messages) == 1, messages
    for fragment in (f"key '{key}'", "ignored", *fragments):
        assert fragment in messages[0], messages[0]
    assert "\n" not in messages[0]
    return resources


# Keys that mean nothing for a resource's provider or kind: chiltepin 0.1.x loads such
# files and ignores them, so they are one warning each, not an error.


def test_mpi_only_keys_on_non_mpi_resource_are_ignored():
    res = ignored({"c": {"max_mpi_apps": 2}}, "max_mpi_apps", "only to MPI", "mpi: true")
    assert res["c"].max_mpi_apps == 1 and "max_mpi_apps" not in res["c"].model_fields_set
    res = ignored({"c": {"mpi_launcher": "srun"}}, "mpi_launcher", "only to MPI")
    assert res["c"].mpi_launcher is None


def test_htex_only_keys_on_mpi_resource_are_ignored():
    res = ignored({"c": {"mpi": True, "max_workers_per_node": 2}}, "max_workers_per_node", "MPI")
    assert res["c"].max_workers_per_node is None


def test_provider_only_keys_on_wrong_provider_are_ignored():
    res = ignored({"c": {"partition": "debug"}}, "partition", "provider 'localhost'", "slurm")
    assert res["c"].partition is None
    res = ignored({"c": {"provider": "pbspro", "constraint": "knl"}}, "constraint", "pbspro")
    assert res["c"].constraint is None
    ignored({"c": {"walltime": "00:10:00"}}, "walltime", "provider 'localhost'")
    ignored({"c": {"exclusive": False}}, "exclusive", "provider 'localhost'")


def test_ignored_key_warning_names_file_line_and_resource(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("compute:\n  provider: localhost\n  partition: debug\n")
    ignored(path, "partition", f"{path}:3", "executor 'compute'", "it applies to provider slurm")


def test_ignored_keys_are_still_checked_for_spelling():
    bad({"c": {"partiton": "debug"}}, "key 'partiton'", "unknown key", "did you mean 'partition'")


def test_empty_account_partition_queue_mean_none(recwarn):
    res = load_resources({"c": {"provider": "slurm", "account": "", "partition": "", "queue": ""}})
    assert (res["c"].account, res["c"].partition, res["c"].queue) == (None, None, None)
    # 0.1.x's localhost resources wrote account: "" too: nothing to warn about.
    assert load_resources({"c": {"account": ""}})["c"].account is None
    assert not [w for w in recwarn if issubclass(w.category, ConfigWarning)]


def test_walltime_defaults_to_ten_minutes_as_0_1():
    assert load_resources({"c": {"provider": "slurm"}})["c"].walltime == "00:10:00"


def test_unknown_provider_and_launcher():
    bad({"c": {"provider": "sge"}}, "key 'provider'", "'localhost', 'slurm' or 'pbspro'")
    bad({"c": {"mpi": True, "mpi_launcher": "jsrun"}}, "key 'mpi_launcher'", "must be one of")


def test_scheduler_values_cannot_inject_shell():
    bad({"c": {"provider": "slurm", "account": "a; rm -rf ~"}}, "key 'account'", "no spaces")
    bad({"c": {"provider": "slurm", "partition": "$(id)"}}, "key 'partition'")


def test_entry_that_is_not_a_mapping_and_bad_names():
    bad({"c": 3}, "executor 'c'", "must be a mapping")
    bad({"bad name": {}}, "invalid executor name 'bad name'")


def test_yaml_syntax_error_reports_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("compute:\n  provider: slurm\n   partition: x\n")
    err = bad(path, "YAML syntax error", f"{path}:3")
    assert err.line == 3


def test_empty_and_non_mapping_files(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    bad(empty, "is empty")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    bad(listing, "must be a mapping", "got list")


def test_missing_file(tmp_path):
    bad(tmp_path / "nope.yaml", "file not found")


def test_remote_resource_needs_endpoint_value():
    bad({"r": {"endpoint": ""}}, "key 'endpoint'", "must not be empty")


def test_published_json_schema_matches_model():
    schema = resource_json_schema()
    json.dumps(schema)
    resource = schema["$defs"]["Resource"]
    assert resource["additionalProperties"] is False
    assert set(resource["properties"]) == set(Resource.model_fields)
    assert "RemoteResource" in schema["$defs"]
