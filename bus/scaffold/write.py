"""Writing a planned connector: templates rendered, examples computed, the entry point added."""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Final

from bus.registry import ENTRY_POINT_GROUP
from bus.scaffold.examples import TEMPLATES, write_examples
from bus.scaffold.plan import ConnectorPlan, ScaffoldError

__all__ = ["add_entry_point", "write_connector"]

_TABLE: Final = f'[project.entry-points."{ENTRY_POINT_GROUP}"]'


def write_connector(plan: ConnectorPlan, *, force: bool = False) -> list[Path]:
    """Write the connector's files under ``plan.dest``; return them, relative to it.

    Refuses a connector whose folder, mappings, test or WSDL exists, or whose name is already
    an entry point, unless ``force`` (then its files are overwritten, nothing else is removed).
    """
    pyproject = plan.dest / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    taken = [str(place) for place in plan.existing()]
    if _entry_point_line(text, plan.name) is not None:
        taken.append(f"the entry point {plan.name} in pyproject.toml")
    if taken and not force:
        raise ScaffoldError(
            f"a connector named {plan.name!r} already exists ({', '.join(taken)}): choose "
            "another name, or pass --force to overwrite its files"
        )
    variables = plan.variables()
    written: list[Path] = []
    for template, target in plan.files():
        source = (TEMPLATES / template).read_text(encoding="utf-8")
        path = plan.dest / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(source).substitute(variables), encoding="utf-8")
        written.append(target)
    written += [path.relative_to(plan.dest) for path in write_examples(plan)]
    factory = f"connectors.{plan.name}:{plan.class_name}Connector"
    if add_entry_point(pyproject, plan.name, factory):
        written.append(Path("pyproject.toml"))
    return written


def add_entry_point(pyproject: Path, name: str, target: str) -> bool:
    """Add ``name = "target"`` to the connectors' entry points, in order; False if it is there.

    The file is edited as text, so that its comments and layout stay as they are; a missing
    table is appended at the end.
    """
    text = pyproject.read_text(encoding="utf-8")
    if _entry_point_line(text, name) is not None:
        return False
    line = f'{name} = "{target}"'
    lines = text.splitlines(keepends=True)
    start = next((i for i, row in enumerate(lines) if row.strip() == _TABLE), None)
    if start is None:
        tail = "" if text.endswith("\n") else "\n"
        pyproject.write_text(f"{text}{tail}\n{_TABLE}\n{line}\n", encoding="utf-8")
        return True
    end = start + 1
    while end < len(lines) and lines[end].strip() and not lines[end].startswith("["):
        end += 1
    # Keep the entries sorted by name, as the built-in ones are.
    entries = [i for i in range(start + 1, end) if "=" in lines[i]]
    position = next((i for i in entries if lines[i].split("=")[0].strip() > name), end)
    lines.insert(position, line + "\n")
    pyproject.write_text("".join(lines), encoding="utf-8")
    return True


def _entry_point_line(text: str, name: str) -> str | None:
    """The line registering ``name`` in the connectors' table, if any."""
    inside = False
    for row in text.splitlines():
        stripped = row.strip()
        if stripped.startswith("["):
            inside = stripped == _TABLE
        elif inside and stripped.split("=")[0].strip() == name and "=" in stripped:
            return row
    return None
