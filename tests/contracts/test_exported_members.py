"""Tests of the public surface and the boundary of the contracts package."""

from __future__ import annotations

import ast
from pathlib import Path

import contracts

CONTRACTS_DIR = Path(contracts.__file__).parent


def test_all_names_are_importable_and_listed_once() -> None:
    """Every name in contracts.__all__ exists, and none is listed twice."""
    assert len(contracts.__all__) == len(set(contracts.__all__))
    missing = [name for name in contracts.__all__ if not hasattr(contracts, name)]
    assert missing == []


def test_public_names_of_submodules_are_exported() -> None:
    """Every name a contracts submodule lists in its own __all__ is in contracts.__all__."""
    exported = set(contracts.__all__)
    submodules = ("codes", "dossier", "envelope", "procedures", "samples", "status", "timezone")
    for module_name in submodules:
        module = getattr(contracts, module_name)
        assert set(module.__all__) <= exported, module_name


def test_contracts_import_nothing_from_the_bus() -> None:
    """No module of contracts imports bus or connectors: the language sits below both."""
    offenders = []
    for path in CONTRACTS_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            offenders += [
                f"{path.name}: {name}"
                for name in names
                if name.split(".")[0] in {"bus", "connectors"}
            ]
    assert offenders == []
