"""Tests that the committed JSON Schema files match the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.envelope import DOSSIER_DATASCHEMA, STATUS_CHANGE_DATASCHEMA
from contracts.export import SCHEMAS, SCHEMAS_DIR, check_schemas, main, render_schemas

REGENERATE = "run `python -m contracts.export` to regenerate contracts/schemas/"


@pytest.mark.parametrize("name", sorted(render_schemas()))
def test_committed_schema_matches_the_model(name: str) -> None:
    """Each committed schema file is byte-for-byte what the model renders today."""
    path = SCHEMAS_DIR / name
    assert path.exists(), f"{path} is missing; {REGENERATE}"
    assert path.read_text(encoding="utf-8") == render_schemas()[name], (
        f"{path} has drifted from its model; {REGENERATE}"
    )


def test_every_schema_entry_has_a_file_and_no_file_is_stale() -> None:
    """Every SCHEMAS entry has a file in contracts/schemas/, and every file there has a model."""
    files = {path.name for path in SCHEMAS_DIR.glob("*.json")}
    assert files == {f"{stem}.json" for stem in SCHEMAS}, REGENERATE


def test_rendering_is_deterministic() -> None:
    """Rendering twice yields identical text, so drift checks never flap."""
    assert render_schemas() == render_schemas()


def test_schema_ids_are_the_dataschema_uris() -> None:
    """Each schema's $id is the URI an envelope's dataschema names."""
    ids = {name: json.loads(text)["$id"] for name, text in render_schemas().items()}
    assert ids["dossier-1.0.json"] == DOSSIER_DATASCHEMA
    assert ids["status-change-1.0.json"] == STATUS_CHANGE_DATASCHEMA


def test_check_reports_drifted_missing_and_stale_files(tmp_path: Path) -> None:
    """--check exits 1 and names drifted, missing and stale files; after a write it exits 0."""
    assert main(["--dir", str(tmp_path)]) == 0
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "dossier-1.0.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "status-change-1.0.json").unlink()
    (tmp_path / "old-0.9.json").write_text("{}\n", encoding="utf-8")
    problems = check_schemas(tmp_path)
    assert problems == [
        f"drifted: {tmp_path / 'dossier-1.0.json'}",
        f"missing: {tmp_path / 'status-change-1.0.json'}",
        f"stale (no model): {tmp_path / 'old-0.9.json'}",
    ]
    assert main(["--check", "--dir", str(tmp_path)]) == 1
