"""Editor support: the published JSON Schemas are what the CLI prints, carry ``$id`` and
``title``, and every shipped YAML file names its schema on its first line (the
``yaml-language-server`` convention) and validates against it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from helpers.cli import run
from helpers.infra import REPO, SITES

from chiltepin.config.schema import SCHEMA_URL

#: (command printing the schema, published file)
PUBLISHED = {
    "resources": (("config", "schema"), REPO / "schemas" / "resources.schema.json"),
    "site": (("site", "schema"), REPO / "site_configs" / "schema.json"),
    "service": (("agent", "schema"), REPO / "schemas" / "service.schema.json"),
}


def shipped_yaml() -> dict[Path, str]:
    """Every YAML file the project ships as a profile or example, with its kind."""
    files = {p: "site" for p in sorted((REPO / "site_configs").glob("*.yaml"))}
    files.update({p: "site" for p in sorted(SITES.glob("*.yaml"))})
    for path in sorted((REPO / "examples").rglob("*.y*ml")):
        data = yaml.safe_load(path.read_text())
        files[path] = "service" if "agent" in data else "resources"
    return files


@pytest.mark.parametrize("kind", sorted(PUBLISHED))
def test_published_schema_is_exactly_what_the_cli_prints(kind):
    command, path = PUBLISHED[kind]
    out = run(*command)
    assert out.returncode == 0, out.stderr
    assert path.read_text() == out.stdout, (
        f"regenerate: chiltepin {' '.join(command)} > {path.relative_to(REPO)}"
    )
    schema = json.loads(out.stdout)
    assert schema["$id"] == SCHEMA_URL + str(path.relative_to(REPO))
    assert schema["title"].startswith("chiltepin ")
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_kind_of_shipped_file_is_covered():
    kinds = set(shipped_yaml().values())
    assert kinds == set(PUBLISHED), kinds


@pytest.mark.parametrize(
    "path, kind", sorted(shipped_yaml().items()), ids=lambda v: getattr(v, "name", v)
)
def test_shipped_yaml_names_its_schema_and_validates(path, kind):
    first = path.read_text().splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix), f"{path}: first line must be '{prefix}<schema>'"
    target = (path.parent / first[len(prefix) :]).resolve()
    assert target == PUBLISHED[kind][1], (path, target)
    schema = json.loads(target.read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))


def test_schemas_reject_what_the_toolkit_rejects():
    site = json.loads(PUBLISHED["site"][1].read_text())
    profile = yaml.safe_load((REPO / "site_configs" / "local.yaml").read_text())
    with pytest.raises(jsonschema.ValidationError, match="schedular"):
        jsonschema.validate({**profile, "schedular": "slurm"}, site)
    resources = json.loads(PUBLISHED["resources"][1].read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"compute": {"provider": "slurm", "partiton": "x"}}, resources)
    service = json.loads(PUBLISHED["service"][1].read_text())
    with pytest.raises(jsonschema.ValidationError, match="pattern"):
        jsonschema.validate({"name": "bad name", "agent": "m:C"}, service)
