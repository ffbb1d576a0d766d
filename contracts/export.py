"""Export the contracts as JSON Schema files for peers that do not speak Python.

``python -m contracts.export`` rewrites contracts/schemas/; ``--check`` fails on drift.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pydantic import BaseModel

from contracts.alerts import DeadlineAlert
from contracts.dossier import BirthRegistrationForm, DeathRegistrationForm, Dossier
from contracts.envelope import EventEnvelope, dataschema_uri
from contracts.linkage import LinkageBundle, StepOrder
from contracts.status import StatusChange

__all__ = ["SCHEMAS", "SCHEMAS_DIR", "check_schemas", "main", "render_schemas", "write_schemas"]

SCHEMAS_DIR: Final = Path(__file__).with_name("schemas")

SCHEMAS: Final[dict[str, type[BaseModel]]] = {
    "dossier-1.0": Dossier,
    "status-change-1.0": StatusChange,
    "event-envelope-1.0": EventEnvelope,
    "birth-registration-form-1.0": BirthRegistrationForm,
    "death-registration-form-1.0": DeathRegistrationForm,
    "linkage-bundle-1.0": LinkageBundle,
    "step-order-1.0": StepOrder,
    "deadline-alert-1.0": DeadlineAlert,
}
"""File stem (``<name>-<version>``) -> model; the stem also names the ``dataschema`` URI."""

_JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def _schema_id(stem: str) -> str:
    name, _, version = stem.rpartition("-")
    return dataschema_uri(name, version)


def render_schemas() -> dict[str, str]:
    """File name -> JSON Schema text, byte-for-byte deterministic so drift shows in a diff."""
    rendered: dict[str, str] = {}
    for stem, model in SCHEMAS.items():
        schema = model.model_json_schema(mode="validation")
        # $id is the envelope's dataschema URI, so a consumer can resolve one from the other.
        schema = {"$schema": _JSON_SCHEMA_DIALECT, "$id": _schema_id(stem), **schema}
        text = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        rendered[f"{stem}.json"] = text
    return rendered


def write_schemas(directory: Path = SCHEMAS_DIR) -> list[Path]:
    """Write every schema file into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_schemas(directory: Path = SCHEMAS_DIR) -> list[str]:
    """Problems between ``directory`` and the models: missing, drifted or stale files."""
    expected = render_schemas()
    problems: list[str] = []
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"drifted: {path}")
    problems.extend(
        f"stale (no model): {path}"
        for path in sorted(directory.glob("*.json"))
        if path.name not in expected
    )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the schema files, or with ``--check`` report drift and return 1."""
    parser = argparse.ArgumentParser(
        prog="python -m contracts.export", description="Export the contracts as JSON Schema."
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the files are out of date"
    )
    parser.add_argument(
        "--dir", type=Path, default=SCHEMAS_DIR, help=f"target directory (default {SCHEMAS_DIR})"
    )
    args = parser.parse_args(argv)
    directory: Path = args.dir
    if args.check:
        problems = check_schemas(directory)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `python -m contracts.export` to regenerate", file=sys.stderr)
            return 1
        return 0
    for path in write_schemas(directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
