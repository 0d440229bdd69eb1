"""mkdocs hook: the pages generated at build time (nothing generated is committed).

- ``sites/<name>.md``: one reference page per shipped site profile (``site_configs/``),
  loaded and resolved by the toolkit itself, plus ``sites/index.md``;
- ``cli.md``: the command-line reference, from ``chiltepin.cli.main.build_parser``;
- ``api/<module>.md``: one mkdocstrings page per public module of ``chiltepin``;
- ``architecture.md``: ARCHITECTURE.md as it is;
- ``<!-- include: FILE#Heading -->`` in a page is replaced by that section of FILE
  (README.md, the collection README), so the site links the repository's text instead of
  copying it. A missing file or heading fails the build.
"""

from __future__ import annotations

import argparse
import functools
import json
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parents[2]
SITE_CONFIGS = REPO / "site_configs"
INVENTORIES = REPO / "ansible" / "inventories"
#: Top-level parts of the package that the API reference leaves out (the CLI has its own).
API_EXCLUDE = {"cli"}
#: Width of the generated ``--help`` texts.
HELP_WIDTH = 90

INCLUDE = re.compile(r"^<!-- include: (?P<file>[^#\s]+)#(?P<heading>[^>]+?) -->$", re.MULTILINE)
LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?P<anchor>#[^)\s]*)?\)")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# ------------------------------------------------------------------------ mkdocs events
def on_config(config: Any) -> Any:
    """Expand the nav entries of the generated sections."""
    generated = {
        "sites/index.md": [f"sites/{name}.md" for name in site_names()],
        "api/index.md": [f"api/{name}.md" for name in api_modules()],
    }
    for entry in config.nav or []:
        if isinstance(entry, dict):
            for title, target in entry.items():
                if isinstance(target, str) and target in generated:
                    entry[title] = [target, *generated[target]]
    return config


def on_files(files: Files, config: Any) -> Files:
    architecture = (REPO / "ARCHITECTURE.md").read_text()
    pages = {
        "cli.md": cli_page(),
        "architecture.md": rewrite_links(architecture, "", "architecture.md", config.repo_url),
    }
    pages["sites/index.md"] = sites_index()
    for name in site_names():
        pages[f"sites/{name}.md"] = site_page(name)
    pages["api/index.md"] = api_index()
    for name in api_modules():
        pages[f"api/{name}.md"] = api_page(name)
    for uri, text in pages.items():
        files.append(File.generated(config, uri, content=text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    def include(match: re.Match[str]) -> str:
        return section(match["file"], match["heading"], page.file.src_uri, config.repo_url)

    return INCLUDE.sub(include, markdown)


# ------------------------------------------------------------------------ includes
def section(file: str, heading: str, page_uri: str, repo_url: str) -> str:
    """The text under ``heading`` in the repository file ``file`` (headings one level up)."""
    path = REPO / file
    if not path.is_file():
        raise PluginError(f"{page_uri}: include of missing file {file}")
    lines = path.read_text().splitlines()
    start = level = None
    fence = False
    body: list[str] = []
    for line in lines:
        if line.lstrip().startswith("```"):
            fence = not fence
        found = None if fence else re.match(r"^(#+) (.*)$", line)
        if start is None:
            if found and found[2].strip() == heading:
                start, level = True, len(found[1])
            continue
        if found and len(found[1]) <= level:
            break
        if found:
            line = "#" * (len(found[1]) - level + 1) + " " + found[2]
        body.append(line)
    if start is None:
        raise PluginError(f"{page_uri}: {file} has no heading '{heading}'")
    text = "\n".join(body).strip("\n")
    return rewrite_links(text, posixpath.dirname(file), page_uri, repo_url)


def rewrite_links(text: str, base: str, page_uri: str, repo_url: str) -> str:
    """Links relative to the included file: to pages of this site, else to the repository."""

    def fix(match: re.Match[str]) -> str:
        target, anchor = match["target"], match["anchor"] or ""
        if re.match(r"^[a-z]+:", target):
            return match[0]
        path = posixpath.normpath(posixpath.join(base, target))
        if path.startswith("docs/") and path.endswith(".md"):
            rel = posixpath.relpath(path[len("docs/") :], posixpath.dirname(page_uri) or ".")
            return f"]({rel}{anchor})"
        return f"]({repo_url.rstrip('/')}/blob/main/{path}{anchor})"

    return LINK.sub(fix, text)


# ------------------------------------------------------------------------ site profiles
def registry() -> Any:
    from chiltepin.sites import SiteRegistry

    return SiteRegistry([SITE_CONFIGS])


def site_names() -> list[str]:
    return registry().names()


def code(value: Any) -> str:
    # Python-Markdown's tables keep "|" inside code spans as text.
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`"


def sites_index() -> str:
    reg = registry()
    rows = []
    for name in reg.names():
        site = reg.load(name)
        container = site.profile.container.runtime if site.profile.container else "none"
        rows.append(
            f"| [{name}]({name}.md) | {site.profile.description} | `{site.profile.scheduler}` "
            f"| {', '.join(code(e) for e in site.executor_names)} | `{container}` |"
        )
    template = (SITE_CONFIGS / "template.yaml").read_text()
    return "\n".join(
        [
            "# Site profiles",
            "",
            "One page per profile shipped in `site_configs/`, generated from the profile "
            "files when this site is built: each executor as the toolkit resolves it "
            "(`chiltepin site show NAME --resolved`). See [Profiles](../concepts/profiles.md) "
            "for how profiles are looked up and overridden.",
            "",
            "| site | description | scheduler | executors | container |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
            "## A profile for a new site",
            "",
            "Copy `site_configs/template.yaml` (below) to `~/.config/chiltepin/sites/NAME.yaml` "
            "(or to `site_configs/` in a checkout, with an inventory in "
            "`ansible/inventories/NAME/`) and check it with `chiltepin site validate FILE`.",
            "",
            "```yaml",
            template.rstrip(),
            "```",
            "",
        ]
    )


def site_page(name: str) -> str:
    site = registry().load(name)
    profile = site.profile
    facts = [
        ("scheduler", code(profile.scheduler)),
        ("hostnames", ", ".join(code(h) for h in profile.hostnames) or "none (never detected)"),
        ("exchange", code(site.exchange.model_dump(exclude_none=True))),
        ("executors", ", ".join(code(e) for e in site.executor_names)),
    ]
    if profile.container:
        facts.insert(2, ("container", code(profile.container.model_dump(exclude_none=True))))
    if (INVENTORIES / name).is_dir():
        facts.append(("Ansible inventory", f"`ansible/inventories/{name}/`"))
    out = [
        f"# {name}",
        "",
        profile.description or "",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in facts),
        "",
        "## Executors",
        "",
        "Each executor as a workflow uses it: the site defaults applied, and which part of "
        "the profile set each value.",
    ]
    for executor in site.executor_names:
        resource, where = site.resolve(executor)
        out += ["", f"### {executor}", "", "| key | value | set by |", "| --- | --- | --- |"]
        for key, value in resource.model_dump().items():
            if value is None or value == []:
                continue
            out.append(f"| `{key}` | {code(value)} | {where[key][0]} |")
    executors = ", ".join(json.dumps(e) for e in site.executor_names)
    first = site.executor_names[0]
    out += [
        "",
        "## Using it",
        "",
        "```python",
        "from chiltepin import Workflow",
        "",
        f'with Workflow(site="{name}", include=[{executors}]):',
        "    ...",
        "```",
        "",
        "```bash",
        f"chiltepin site show {name} --resolved",
        f"chiltepin endpoint configure {name}-{first} --site {name} --executor {first}",
        "```",
        "",
        f"## The profile (`site_configs/{name}.yaml`)",
        "",
        "```yaml",
        (SITE_CONFIGS / f"{name}.yaml").read_text().rstrip(),
        "```",
        "",
    ]
    return "\n".join(out)


# ------------------------------------------------------------------------ CLI
def subcommands(
    parser: argparse.ArgumentParser,
) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(help, prog, parser) of every subcommand below ``parser``, depth first."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((helps.get(name, ""), sub.prog, sub))
                found += subcommands(sub)
    return found


def help_text(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = functools.partial(parser.formatter_class, width=HELP_WIDTH)
    return parser.format_help().rstrip()


def cli_page() -> str:
    from chiltepin.cli.main import build_parser

    parser = build_parser()
    out = [
        "# Command-line reference",
        "",
        "Generated from the `chiltepin` command's parser (`chiltepin.cli.main.build_parser`) "
        "when this site is built; `chiltepin COMMAND --help` prints the same text.",
        "",
        "```text",
        help_text(parser),
        "```",
    ]
    for summary, prog, sub in subcommands(parser):
        depth = len(prog.split()) - 1
        out += ["", "#" * min(depth + 1, 4) + f" {prog}", ""]
        if summary:
            out += [summary[:1].upper() + summary[1:] + ".", ""]
        out += ["```text", help_text(sub), "```"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------ API
def api_modules() -> list[str]:
    """Public top-level modules and subpackages of chiltepin, read from the source tree."""
    names = []
    for path in sorted((REPO / "chiltepin").iterdir()):
        name = path.stem if path.suffix == ".py" else path.name
        if name.startswith("_") or name in API_EXCLUDE:
            continue
        if path.suffix == ".py" or (path / "__init__.py").is_file():
            names.append(name)
    return names


def api_index() -> str:
    rows = [f"- [chiltepin.{name}]({name}.md)" for name in api_modules()]
    return "\n".join(
        [
            "# API reference",
            "",
            "Generated from the docstrings of the source when this site is built "
            "(mkdocstrings). `import chiltepin` gives `Workflow` "
            "([chiltepin.workflow][chiltepin.workflow.Workflow]) and `AgentSystem` "
            "([chiltepin.agents][chiltepin.agents.AgentSystem]), loaded lazily. "
            "The command line is described in the [CLI reference](../cli.md).",
            "",
            *rows,
            "",
        ]
    )


def api_page(name: str) -> str:
    return "\n".join(
        [
            f"# chiltepin.{name}",
            "",
            f"::: chiltepin.{name}",
            "    options:",
            "      show_root_heading: false",
            "      show_submodules: true",
            "",
        ]
    )
