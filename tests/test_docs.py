"""The documentation site, built for real with ``mkdocs build --strict`` (warnings fail).

The pages generated at build time (docs/_hooks/generate.py) are checked against their
sources: every shipped site profile with each of its executors, every CLI subcommand of
the real parser, the public modules' docstrings; plus the included README sections and
the hand-written migration guide. Needs the ``docs`` extra: a failure under CI=true.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers.infra import BIN, REPO, require

MKDOCS = BIN / "mkdocs"
HOOK = REPO / "docs" / "_hooks" / "generate.py"


def text_of(page: Path) -> str:
    """The visible text of a built page's article (tags stripped, entities decoded)."""
    raw = page.read_text()
    article = raw[raw.index("<article") : raw.index("</article>")]
    return html.unescape(re.sub(r"<[^>]+>", "", article))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    require(MKDOCS.exists(), "mkdocs (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("docs") / "site"
    built = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-5000:]
    assert "WARNING" not in built.stderr, built.stderr[-5000:]
    return out


def test_every_site_profile_has_a_generated_page_with_its_executors(site):
    from chiltepin.sites import SiteRegistry

    registry = SiteRegistry([REPO / "site_configs"])
    names = registry.names()
    assert {"local", "hera", "testcluster"} <= set(names)
    index = text_of(site / "sites" / "index.html")
    for name in names:
        profile = registry.load(name)
        page = site / "sites" / name / "index.html"
        assert page.is_file(), name
        text = text_of(page)
        assert profile.profile.description in text and profile.profile.description in index
        for executor in profile.executor_names:
            assert f'id="{executor}"' in page.read_text(), (name, executor)
            resource, _ = profile.resolve(executor)
            if resource.model_dump().get("partition"):
                assert resource.model_dump()["partition"] in text
        # the profile file itself, comments included
        first_line = (REPO / "site_configs" / f"{name}.yaml").read_text().splitlines()[0]
        assert first_line in text, (name, first_line)


def _subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += [sub, *_subcommands(sub)]
    return found


def test_cli_reference_has_every_subcommand_of_the_parser(site):
    from chiltepin.cli.main import build_parser

    page = site / "cli" / "index.html"
    text = text_of(page)
    subs = _subcommands(build_parser())
    assert len(subs) > 20
    for sub in subs:
        assert f"usage: {sub.prog}" in text, sub.prog
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in text, (sub.prog, flag)
    for command in ("chiltepin site show", "chiltepin endpoint configure", "chiltepin agent call"):
        assert f"{command}¶" in text, command  # a heading (permalink) per subcommand


def test_api_reference_is_generated_from_docstrings(site):
    from chiltepin.errors import ConfigError
    from chiltepin.workflow import Workflow

    modules = sorted(p.parent.name for p in (site / "api").glob("*/index.html"))
    assert {"workflow", "tasks", "agents", "sites", "errors", "containers"} <= set(modules)
    assert "cli" not in modules
    workflow = text_of(site / "api" / "workflow" / "index.html")
    assert Workflow.__doc__.splitlines()[0] in workflow and "unique_run_dir" in workflow
    assert ConfigError.__doc__.strip().splitlines()[0] in text_of(
        site / "api" / "errors" / "index.html"
    )


def test_readme_sections_and_migration_guide_are_in_the_site(site):
    home = text_of(site / "index.html")
    assert "make stop" in home and "python3-venv" in home  # README's Quick start
    containers = text_of(site / "concepts" / "containers" / "index.html")
    assert "chiltepin image pull" in containers
    provisioning = text_of(site / "concepts" / "provisioning" / "index.html")
    assert "noaa_gsl.chiltepin.site" in provisioning and "molecule" in provisioning.lower()
    migration = (REPO / "docs" / "migration.md").read_text()
    built = text_of(site / "migration" / "index.html")
    for line in migration.splitlines():
        if line.startswith("## "):
            assert line[3:].replace("`", "") in built, line
    assert "Architecture" in text_of(site / "architecture" / "index.html")


def test_generated_pages_are_not_committed():
    for generated in ("docs/sites", "docs/api", "docs/cli.md", "docs/architecture.md"):
        assert not (REPO / generated).exists(), generated


def test_a_missing_include_fails_the_build():
    require(MKDOCS.exists(), "mkdocs (pip install -e '.[docs]')")
    spec = importlib.util.spec_from_file_location("docs_hook", HOOK)
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    from mkdocs.exceptions import PluginError

    assert "make demo" in hook.section("README.md", "Quick start", "index.md", "https://x")
    with pytest.raises(PluginError, match="README.md has no heading 'No such section'"):
        hook.section("README.md", "No such section", "index.md", "https://x")
    with pytest.raises(PluginError, match="missing file NOPE.md"):
        hook.section("NOPE.md", "Quick start", "index.md", "https://x")
    linked = hook.section("README.md", "Migrating from chiltepin 0.1.x", "concepts/x.md", "R")
    assert "](../migration.md)" in linked
