"""One rule per kind of input, on every path: names, arguments, file readers, value types.

Through the real console script where a user would meet the rule; through the Python
API where that is the entry point (``Workflow(site=...)``, ``AgentSystem(site=...)``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
from helpers.cli import one_line_error as the_error_line
from helpers.cli import run

from chiltepin import names
from chiltepin.errors import ConfigError

SERVICE = "name: fz\nagent: helpers.agent_services:Counter\n"


def cli(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    return run(*args, cwd=cwd, env={**os.environ, **(env or {})}, timeout=60)


def one_line_error(out: subprocess.CompletedProcess, fragment: str) -> str:
    line = the_error_line(out)
    assert fragment in line, line
    return line


# --- names -----------------------------------------------------------------------------------

GOOD_NAMES = ["compute", "a", "gpu-a100", "x_1", "v1.2", "A9", "x" * 64]
BAD_NAMES = ["", "a b", "../x", "a/b", "..", "a..b", ".x", "-x", "_x", "x.", "{{x}}", "a#}", "é"]
BAD_NAMES += ["x" * 65, "x\n", "a\tb", "a'b", 'a"b', "a$b", "a%b"]


@pytest.mark.parametrize("name", GOOD_NAMES + BAD_NAMES)
def test_the_name_rule_is_the_published_schema(name):
    """names.is_valid_name, the resource config schema and the site profile schema agree."""
    from chiltepin.config.schema import resource_json_schema
    from chiltepin.sites.schema import profile_json_schema

    expected = name in GOOD_NAMES
    assert names.is_valid_name(name) is expected
    if "\n" in name:
        # Python's re (used by jsonschema) lets '$' match before a final newline; JSON
        # Schema's ECMA 262 regexes, and the loaders, do not.
        return
    resources = resource_json_schema()
    profile = profile_json_schema()
    checks = [
        ({"type": "object", "propertyNames": resources["propertyNames"]}, {name: {}}),
        (
            {
                "type": "object",
                "propertyNames": profile["properties"]["executors"]["propertyNames"],
            },
            {name: {}},
        ),
        (profile["properties"]["name"], name),
    ]
    for schema, instance in checks:
        valid = jsonschema.Draft202012Validator(schema).is_valid(instance)
        assert valid is expected, (schema, instance)


def test_published_site_schema_file_carries_the_rule():
    from chiltepin.sites.paths import shipped_dir

    on_disk = json.loads((shipped_dir() / "schema.json").read_text())
    assert on_disk["properties"]["executors"]["propertyNames"] == names.json_schema()


@pytest.mark.parametrize(
    "args",
    [
        ["site", "show", "../site_configs/local"],
        ["site", "show", "../../etc/passwd"],
        ["site", "validate", "../site_configs/local"],
        ["site", "show", "local/../local"],
    ],
)
def test_site_names_cannot_leave_the_profile_layers(args):
    one_line_error(cli(*args), "invalid site name")


def test_python_entry_points_check_site_names():
    from chiltepin import AgentSystem, Workflow

    with pytest.raises(ConfigError, match="invalid site name '../site_configs/local'"):
        Workflow(site="../site_configs/local")
    with pytest.raises(ConfigError, match="invalid site name"):
        AgentSystem(site="../local")


def test_profile_files_with_names_that_are_not_names_are_not_listed(tmp_path):
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "my site.yaml").write_text("executors: {compute: {}}\n")
    (layer / ".hidden.yaml").write_text("executors: {compute: {}}\n")
    out = cli("site", "list", env={"CHILTEPIN_SITE_PATH": str(layer)})
    assert out.returncode == 0, out.stderr
    assert "my site" not in out.stdout and "hidden" not in out.stdout
    one_line_error(
        cli("site", "validate", str(layer / "my site.yaml")), "invalid site name 'my site'"
    )


def test_an_executor_name_cannot_break_out_of_the_endpoint_template(tmp_path):
    """The name rule closes the template: hostile names never reach generation."""
    from chiltepin.config.schema import Resource
    from chiltepin.endpoint import generate as gen

    layer = tmp_path / "layer"
    layer.mkdir()
    hostile = "x #}\nidle_heartbeats_soft: 1\n{#"
    (layer / "evil.yaml").write_text(
        json.dumps({"scheduler": "localhost", "executors": {hostile: {}}})
    )
    out = cli(
        "endpoint",
        "configure",
        "evil",
        "--site",
        "evil",
        env={"CHILTEPIN_SITE_PATH": str(layer), "GLOBUS_COMPUTE_USER_DIR": str(tmp_path / "gc")},
    )
    one_line_error(out, "invalid executor name")
    assert not (tmp_path / "gc" / "evil").exists()
    plan = gen.EndpointPlan(
        name="ok",
        site="local",
        executors={hostile: Resource()},
        default_executor=hostile,
    )
    with pytest.raises(ConfigError, match="invalid executor name"):
        gen.generate(plan)


@pytest.mark.parametrize(
    "args",
    [
        ["endpoint", "configure", "a..b", "--site", "local"],
        ["endpoint", "render", "../x"],
        ["endpoint", "validate", "a..b"],
        ["endpoint", "start", "{{x}}"],
        ["endpoint", "stop", "x" * 65],
    ],
)
def test_endpoint_names(tmp_path, args):
    out = cli(*args, env={"GLOBUS_COMPUTE_USER_DIR": str(tmp_path / "gc")})
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
    assert "nvalid endpoint name" in out.stderr, out.stderr
    assert not (tmp_path / "gc").exists() or not any((tmp_path / "gc").iterdir())


# --- arguments, checked before any work ------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "soon", "", "1e300"])
@pytest.mark.parametrize(
    "command",
    [
        ["agent", "launch", "service.yaml"],
        ["agent", "call", "x", "ping"],
        ["agent", "shutdown", "x"],
    ],
    ids=["launch", "call", "shutdown"],
)
def test_timeouts_must_be_positive_seconds(tmp_path, command, value):
    (tmp_path / "service.yaml").write_text(SERVICE)
    out = cli(*command, f"--timeout={value}", cwd=tmp_path, env={"XDG_STATE_HOME": str(tmp_path)})
    one_line_error(out, "argument --timeout: must be a positive number of seconds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["service.yaml"]


def test_unit_output_must_be_a_directory(tmp_path):
    (tmp_path / "service.yaml").write_text(SERVICE)
    (tmp_path / "afile").write_text("keep")
    one_line_error(
        cli("agent", "unit", "service.yaml", "-o", "afile", cwd=tmp_path),
        "'afile' exists and is not a directory",
    )
    one_line_error(
        cli("agent", "unit", "service.yaml", "-o", "afile/sub", cwd=tmp_path), "is not a directory"
    )
    assert (tmp_path / "afile").read_text() == "keep"
    out = cli("agent", "unit", "service.yaml", "-o", "new/units", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "new" / "units" / "chiltepin-agent-fz.service").is_file()


def test_argument_errors_are_one_line():
    one_line_error(cli("config", "validate"), "the following arguments are required: file")
    one_line_error(cli("no-such-command"), "invalid choice: 'no-such-command'")
    one_line_error(cli("agent", "call", "x", "a", "--args", "[" * 50_000), "--args is nested too")


# --- service files: what is found after loading names the file and key ---------------------


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("agent_workflow_config: missing.yaml\n", ":3: key 'agent_workflow_config': "),
        ("site: nosuch\n", ":3: key 'site': unknown site 'nosuch'"),
        ("site: ../local\n", ":3: key 'site': invalid site name '../local'"),
        (
            "site: local\nagent_workflow_include: [gpu]\n",
            ":4: key 'agent_workflow_include': included executor 'gpu' is not defined in site",
        ),
        (
            "agent_workflow_config: {compute: {}}\nagent_workflow_include: [gpu]\n",
            ":4: key 'agent_workflow_include': included executor 'gpu'",
        ),
    ],
)
def test_service_file_problems_name_the_service_file_and_key(tmp_path, extra, fragment):
    service = tmp_path / "service.yaml"
    service.write_text(SERVICE + extra)
    line = one_line_error(
        cli("agent", "unit", str(service), "-o", str(tmp_path / "units"), cwd=tmp_path),
        fragment,
    )
    assert line.startswith(f"chiltepin: error: {service}:"), line
    assert not (tmp_path / "units").exists()


def test_a_missing_workflow_config_file_writes_no_unit(tmp_path):
    service = tmp_path / "service.yaml"
    service.write_text(SERVICE + "agent_workflow_config: resources.yaml\n")
    one_line_error(cli("agent", "unit", str(service), "-o", str(tmp_path / "units")), "not exist")
    assert not (tmp_path / "units").exists()
    (tmp_path / "resources.yaml").write_text("compute: {provider: localhost}\n")
    out = cli("agent", "unit", str(service), "-o", str(tmp_path / "units"))
    assert out.returncode == 0, out.stderr


# --- unions: the member that fits the value reports ------------------------------------------


@pytest.mark.parametrize(
    ("container", "fragment"),
    [
        ("{imgae: x}", "key 'container.imgae': unknown key (hint: did you mean 'image'?)"),
        ("{image: 5}", "key 'container.image': expected string, got an integer 5"),
        ("5", "key 'container': expected false or a mapping, got an integer 5"),
        ("true", "key 'container': expected false or a mapping, got a boolean True"),
    ],
)
def test_container_override_problems_name_the_key(tmp_path, container, fragment):
    profile = tmp_path / "fz.yaml"
    profile.write_text(f"executors:\n  c:\n    container: {container}\n")
    line = one_line_error(cli("site", "validate", str(profile)), fragment)
    assert "literal" not in line and "ContainerOverride" not in line


def test_a_union_in_a_service_file_says_what_it_takes(tmp_path):
    service = tmp_path / "service.yaml"
    service.write_text(SERVICE + "agent_workflow_config: 5\n")
    one_line_error(
        cli("agent", "unit", str(service)),
        "key 'agent_workflow_config': expected a mapping or a string, got an integer 5",
    )


# --- the same value rule on every path --------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint_tc(tmp_path_factory):
    from chiltepin.endpoint.writer import configure

    gc = tmp_path_factory.mktemp("gc")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GLOBUS_COMPUTE_USER_DIR", str(gc))
        configure("tc", "testcluster", "compute")
    return gc


def _paths_accept(tmp_path: Path, gc: Path, key: str, value: str) -> dict[str, bool]:
    """Whether each path that takes a scheduler value accepts ``value`` for ``key``."""
    results = {}
    docs = {
        "resource config": ("config", {"c": {"provider": "slurm", key: value}}),
        "remote resource": ("config", {"c": {"endpoint": "tc", key: value}}),
        "profile default": ("site", {"defaults": {key: value}, "executors": {"c": {}}}),
        "profile executor": ("site", {"executors": {"c": {key: value}}}),
    }
    for label, (command, doc) in docs.items():
        path = tmp_path / f"{label.replace(' ', '_')}.yaml"
        path.write_text(json.dumps(doc))
        out = cli(command, "validate", str(path))
        assert out.returncode in (0, 2) and "Traceback" not in out.stderr, out.stderr
        results[label] = out.returncode == 0
    options = tmp_path / "options.json"
    options.write_text(json.dumps({key: value}))
    out = cli(
        "endpoint", "render", "tc", "-o", str(options), env={"GLOBUS_COMPUTE_USER_DIR": str(gc)}
    )
    assert out.returncode in (0, 2) and "Traceback" not in out.stderr, out.stderr
    results["endpoint option"] = out.returncode == 0
    return results


@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [
        ("account", "proj&&id", True),
        ("account", "proj", True),
        ("account", "", True),  # none, as in chiltepin 0.1.x
        ("account", "proj\n", False),
        ("account", "a b", False),
        ("account", "$(id)", False),
        ("queue", "normal\n", False),
        ("walltime", "01:00:00", True),
        ("walltime", "01:00:00\n", False),
        ("walltime", "1h", False),
    ],
)
def test_values_are_restricted_the_same_way_on_every_path(
    tmp_path, endpoint_tc, key, value, accepted
):
    results = _paths_accept(tmp_path, endpoint_tc, key, value)
    assert results == dict.fromkeys(results, accepted), results


# --- other files every reader reads the same way ---------------------------------------------


def _bad_file(path: Path, how: str) -> None:
    if how == "non-utf8":
        path.write_bytes(b"GLOBUS_COMPUTE_CLIENT_ID=\xff\xfe\n")
    elif how == "directory":
        path.mkdir()
    elif how == "2mib":
        path.write_text("#" * (2 << 20))
    else:
        os.mkfifo(path)


FILE_CLASSES = [
    ("non-utf8", "is not UTF-8 text"),
    ("directory", "is a directory"),
    ("2mib", "is too large"),
    ("fifo", "is not a regular file"),
]


@pytest.mark.parametrize(("how", "fragment"), FILE_CLASSES)
def test_credentials_files(tmp_path, endpoint_tc, how, fragment):
    creds = tmp_path / "creds.env"
    _bad_file(creds, how)
    out = cli(
        "endpoint",
        "start",
        "tc",
        "--credentials",
        str(creds),
        env={"GLOBUS_COMPUTE_USER_DIR": str(endpoint_tc)},
    )
    line = one_line_error(out, f"{creds}: credentials file {fragment}")
    assert "\\xff" not in line and "GLOBUS_COMPUTE_CLIENT_ID=" not in line  # no content echoed


@pytest.mark.parametrize(("how", "fragment"), FILE_CLASSES)
def test_identity_mapping_files(tmp_path, how, fragment):
    mapping = tmp_path / "mapping.json"
    _bad_file(mapping, how)
    gc = tmp_path / "gc"
    out = cli(
        "endpoint",
        "configure",
        "mu",
        "--site",
        "testcluster",
        "--multi-user",
        "--contact-email",
        "admin@example.org",
        "--identity-mapping",
        str(mapping),
        env={"GLOBUS_COMPUTE_USER_DIR": str(gc)},
    )
    one_line_error(out, f"{mapping}: identity mapping {fragment}")
    assert not (gc / "mu").exists()


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb:\n  c: 2\n  c: 3\n",
        "{a: 1, a: 2}\n",
        "x:\n  - {k: 1, k: 2}\n",
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(text):
    from chiltepin.config.loader import parse_yaml

    with pytest.raises(ConfigError, match="duplicate key"):
        parse_yaml(text, "doc.yaml")


def test_merge_keys_may_override_what_they_merge():
    from chiltepin.config.loader import parse_yaml

    data, _ = parse_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n", "doc.yaml")
    assert data["c"] == {"x": 3, "y": 2}


def test_long_values_are_not_echoed_whole(tmp_path):
    config = tmp_path / "resources.yaml"
    config.write_text(f"c:\n  provider: slurm\n  account: '{'a' * 500_000} b'\n")
    line = one_line_error(cli("config", "validate", str(config)), "key 'account'")
    assert len(line) < 1000
