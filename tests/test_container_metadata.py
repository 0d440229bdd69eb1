"""containers/Dockerfile and containers/chiltepin.def describe one image: the same version,
environment and OCI labels, read with spython's recipe parsers (DockerParser,
SingularityParser; never its lossy Dockerfile-to-definition conversion).

Apptainer cannot be installed on these machines, so the definition file is parsed, not
built (``..._apptainer_command_construction_only``). The OCI image the test suite builds
is inspected for its labels in ``test_built_image_carries_the_labels`` (podman).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import string
import subprocess

import pytest
import tomllib
from helpers.infra import REPO, SITES, require

from chiltepin import __version__
from chiltepin.containers import parse_image_ref
from chiltepin.containers.reference import DEFAULT_IMAGE

DOCKERFILE = REPO / "containers" / "Dockerfile"
DEFINITION = REPO / "containers" / "chiltepin.def"
OCI = "org.opencontainers.image."
#: Labels that describe one build of the OCI image (build arguments, empty when unknown);
#: a .sif built from that image keeps them, so the .def does not repeat them.
PER_BUILD = {
    f"{OCI}created": "CREATED",
    f"{OCI}revision": "VCS_REF",
    f"{OCI}base.name": "BASE_IMAGE",
    f"{OCI}base.digest": "BASE_DIGEST",
}
FIXED = {
    f"{OCI}{key}"
    for key in (
        "title",
        "description",
        "authors",
        "url",
        "documentation",
        "licenses",
        "version",
        "source",
    )
}


@pytest.fixture(scope="module")
def docker():
    require(importlib.util.find_spec("spython") is not None, "spython (the apptainer extra)")
    from spython.main.parse.parsers import DockerParser

    parser = DockerParser(str(DOCKERFILE))
    (recipe,) = parser.recipe.values()  # one stage
    return parser, recipe


@pytest.fixture(scope="module")
def definition():
    require(importlib.util.find_spec("spython") is not None, "spython (the apptainer extra)")
    from spython.main.parse.parsers import SingularityParser

    parser = SingularityParser(str(DEFINITION))  # refuses any Bootstrap but docker
    (recipe,) = parser.recipe.values()
    return recipe


def docker_labels(docker, resolve: bool = True) -> dict[str, str]:
    """The Dockerfile's LABELs. spython keeps each continued line of a LABEL as one raw
    entry (``key="value" \\``); ``resolve`` puts in the ARG defaults it parsed."""
    parser, recipe = docker
    labels = {}
    for entry in recipe.labels:
        for word in shlex.split(" ".join(entry).rstrip(" \\")):
            key, value = word.split("=", 1)
            labels[key] = string.Template(value).substitute(parser.args) if resolve else value
    return labels


def pairs(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines)


def test_dockerfile_labels_are_the_full_oci_set_from_the_package_metadata(docker):
    parser, _ = docker
    labels = docker_labels(docker)
    assert set(labels) == FIXED | set(PER_BUILD)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert labels[f"{OCI}title"] == project["name"]
    assert labels[f"{OCI}licenses"] == project["license"]
    assert labels[f"{OCI}authors"] == ", ".join(a["name"] for a in project["authors"])
    assert labels[f"{OCI}url"] == project["urls"]["Homepage"]
    assert labels[f"{OCI}documentation"] == project["urls"]["Documentation"]
    assert labels[f"{OCI}source"] == project["urls"]["Source"]
    # version defaults to the package version (the build fails if the package differs)
    assert parser.args["CHILTEPIN_VERSION"] == __version__ == labels[f"{OCI}version"]
    raw = docker_labels(docker, resolve=False)
    for key, arg in PER_BUILD.items():
        assert raw[key] == f"${{{arg}}}", key  # set by build arguments, for each build
    assert parser.args["BASE_DIGEST"] == parser.args["CREATED"] == ""  # unknown by default


def test_chiltepin_def_parses_and_matches_dockerfile_apptainer_command_construction_only(
    docker, definition
):
    assert definition.fromHeader == DEFAULT_IMAGE
    labels = dict(label.split(None, 1) for label in definition.labels)
    fixed = {k: v for k, v in docker_labels(docker).items() if k not in PER_BUILD}
    assert labels == fixed
    # %test checks the version the image records (spython writes %test out as /tests.sh)
    test_lines = [line for line in definition.install if line.endswith(">> /tests.sh")]
    assert any(f'= "{__version__}"' in line for line in test_lines), test_lines
    # %environment repeats the Dockerfile's ENV (apptainer ignores OCI ENV for %environment
    # semantics of PATH): same values, no drift
    _, recipe = docker
    env = pairs(recipe.environ)
    exported = pairs(definition.environ)
    assert set(exported) == set(env)
    for key in set(env) - {"PATH"}:
        assert exported[key].strip('"') == env[key], key
    assert exported["PATH"].strip('"').startswith(env["PATH"].split(":")[0] + ":")


def test_image_tags_agree_with_the_package_version(docker, definition):
    dockerfile = DOCKERFILE.read_text()
    # the build instructions in the Dockerfile's comments
    tags = set(re.findall(r"ghcr\.io/noaa-gsl/chiltepin:([\w.-]+)", dockerfile))
    assert tags == {__version__}, tags
    assert set(re.findall(r"CHILTEPIN_VERSION=([\d][\w.-]*)", dockerfile)) == {__version__}
    assert docker[0].args["CHILTEPIN_VERSION"] == __version__
    assert definition.fromHeader == DEFAULT_IMAGE == f"ghcr.io/noaa-gsl/chiltepin:{__version__}"
    from chiltepin.sites import SiteRegistry

    registry = SiteRegistry([REPO / "site_configs", SITES])
    images = {}
    for name in registry.names():
        site = registry.load(name)
        for executor in site.executor_names:
            container = site.resolve(executor)[0].container
            if container:
                images[f"{name}/{executor}"] = container.image
    template = (REPO / "site_configs" / "template.yaml").read_text()
    images["template"] = re.search(r"image: (\S+)", template).group(1)
    assert {"hera/compute", "hercules/compute", "ursa/compute", "template"} <= set(images)
    for where, image in images.items():
        assert parse_image_ref(image).tag == __version__, (where, image)
        if not where.startswith("testcluster"):
            assert image == DEFAULT_IMAGE, where
    readme = (REPO / "containers" / "README.md").read_text()
    assert f"now `{__version__}`" in readme


@pytest.mark.podman
def test_built_image_carries_the_labels(container_infra, docker):
    """The image tests/infra/containers.sh built: the Dockerfile's labels, with the
    per-build ones filled in (the commit, its time, the base image and its digest)."""
    image = container_infra["CHILTEPIN_REGISTRY_IMAGE"]  # in the build store and the pulled one
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{json .Labels}}", image],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **container_infra},  # the build store, whichever lane runs this
    )
    assert out.returncode == 0, out.stderr
    labels = json.loads(out.stdout)
    expected = docker_labels(docker)
    for key in FIXED:
        assert labels[key] == expected[key], key
    # The build is cached: a commit that changes nothing the image is made of reuses the
    # image built at an earlier commit. Its revision is then a commit of this history, and
    # created is that commit's time.
    git = ["git", "-C", str(REPO)]
    revision = labels[f"{OCI}revision"]
    assert re.fullmatch(r"[0-9a-f]{40}", revision), revision
    ancestor = subprocess.run([*git, "merge-base", "--is-ancestor", revision, "HEAD"])
    assert ancestor.returncode == 0, f"{revision} is not a commit of this checkout's history"
    when = subprocess.run(
        [*git, "log", "-1", "--format=%cI", revision], capture_output=True, text=True
    )
    assert labels[f"{OCI}created"] == when.stdout.strip()
    assert labels[f"{OCI}base.name"] == "localhost/debian-base:bookworm"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", labels[f"{OCI}base.digest"])
