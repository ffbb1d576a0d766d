"""The README stays true to the code: configuration table, quick start, and ``bus`` commands.

Regenerate the configuration table after changing ``bus/settings.py``::

    .venv/bin/python -m tests.test_readme
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer.main

from bus.cli import app, settings_table

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"
REGENERATE = ".venv/bin/python -m tests.test_readme"

_CODE_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
# `bus worker`, `.venv/bin/bus run --no-demo`, `BUS_API_PORT=8001 bus api`
_BUS_COMMAND = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*(?:\S*/)?bus\s+([a-z][a-z0-9_-]*)")
_MAKE_COMMAND = re.compile(r"\bmake\s+([a-z][a-z0-9_-]*)")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(value: str) -> str:
    """A default as it is written in the environment: JSON strings lose their quotes."""
    if value.startswith('"'):
        value = str(json.loads(value))
    return f"`{_cell(value)}`" if value else "(empty)"


def settings_markdown() -> str:
    """The configuration table, rendered from ``bus.cli.settings_table()``."""
    lines = ["| variable | default | description |", "|---|---|---|"]
    for variable, default, description in settings_table():
        lines.append(f"| `{variable}` | {_default(default)} | {_cell(description)} |")
    return "\n".join(lines)


def _readme_table(text: str) -> str:
    start = text.index(TABLE_START) + len(TABLE_START)
    return text[start : text.index(TABLE_END)].strip()


def _section(text: str, title: str) -> str:
    """The body of the ``## title`` section, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match is not None, f"README has no '## {title}' section"
    return match.group(1)


def _bus_commands(text: str) -> set[str]:
    """Sub-commands of every ``bus ...`` invocation in code spans and code blocks."""
    snippets = [line for block in _CODE_BLOCK.findall(text) for line in block.splitlines()]
    snippets += _CODE_SPAN.findall(_CODE_BLOCK.sub("", text))
    commands = set()
    for snippet in snippets:
        match = _BUS_COMMAND.match(snippet.strip())
        if match:
            commands.add(match.group(1))
    return commands


def write_settings_table(path: Path = README) -> bool:
    """Rewrite the table between the markers; returns whether the file changed."""
    text = path.read_text(encoding="utf-8")
    start = text.index(TABLE_START) + len(TABLE_START)
    end = text.index(TABLE_END)
    updated = f"{text[:start]}\n{settings_markdown()}\n{text[end:]}"
    if updated == text:
        return False
    path.write_text(updated, encoding="utf-8")
    return True


def test_configuration_table_matches_the_settings() -> None:
    """The README lists every BUS_ variable with the default and description the code has."""
    text = README.read_text(encoding="utf-8")
    assert TABLE_START in text and TABLE_END in text, "README lost its settings-table markers"
    assert _readme_table(text) == settings_markdown(), (
        f"README's configuration table is out of date with bus/settings.py: run `{REGENERATE}`"
    )


def test_quick_start_is_exactly_make_run_and_make_test() -> None:
    """The quick start's command block is `make run` and `make test`, and it names no others."""
    quick_start = _section(README.read_text(encoding="utf-8"), "Quick start")
    blocks = _CODE_BLOCK.findall(quick_start)
    assert blocks, "the quick start has no command block"
    commands = [line.strip() for line in blocks[0].splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert set(_MAKE_COMMAND.findall(quick_start)) == {"run", "test"}


def test_quick_start_targets_exist_in_the_makefile() -> None:
    """`make run` and `make test` are real targets."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("run", "test"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"Makefile has no '{target}'"


def test_every_bus_command_in_the_readme_exists() -> None:
    """Each `bus <command>` the README shows is a command of the Typer app."""
    mentioned = _bus_commands(README.read_text(encoding="utf-8"))
    assert mentioned, "the README shows no bus command at all"
    group = typer.main.get_command(app)
    available = set(getattr(group, "commands", {}))
    assert mentioned <= available, f"README shows unknown commands: {sorted(mentioned - available)}"


if __name__ == "__main__":
    changed = write_settings_table()
    print("README.md: configuration table " + ("updated" if changed else "already up to date"))
