"""The agencies' signing keys: made once, read back, refused when missing or unusable."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bus.cli import app
from bus.security.agency_keys import (
    AgencyKeyError,
    create_agency_key,
    load_agency_key,
    public_agency_keys,
)
from bus.security.signing import public_jwk, public_key_text

AGENCY = "000.00.10.H12"
runner = CliRunner()


def test_a_key_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    key = create_agency_key(tmp_path, AGENCY)
    path = tmp_path / f"{AGENCY}.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_text(load_agency_key(tmp_path, AGENCY).public_key()) == public_key_text(
        key.public_key()
    )
    with pytest.raises(AgencyKeyError, match="--replace"):
        create_agency_key(tmp_path, AGENCY)
    replaced = create_agency_key(tmp_path, AGENCY, replace=True)
    assert public_key_text(replaced.public_key()) != public_key_text(key.public_key())


def test_missing_malformed_and_foreign_keys_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(AgencyKeyError, match=f"bus keys new {AGENCY}"):
        load_agency_key(tmp_path, AGENCY)
    (tmp_path / f"{AGENCY}.pem").write_text("not a key")
    with pytest.raises(AgencyKeyError, match="not an unencrypted PEM private key"):
        load_agency_key(tmp_path, AGENCY)
    with pytest.raises(AgencyKeyError, match="is not an agency code"):
        load_agency_key(tmp_path, "../../etc/passwd")
    with pytest.raises(AgencyKeyError, match="is not an agency code"):
        create_agency_key(tmp_path, "H12")


def test_the_public_keys_are_listed_and_a_stray_file_skipped(tmp_path: Path) -> None:
    assert public_agency_keys(tmp_path / "absent") == {}
    key = create_agency_key(tmp_path, AGENCY)
    (tmp_path / "000.00.11.H12.pem").write_text("broken")
    (tmp_path / "notes.txt").write_text("not a key either")
    listed = public_agency_keys(tmp_path)
    assert list(listed) == [AGENCY]
    assert public_key_text(listed[AGENCY]) == public_key_text(key.public_key())


def test_the_keys_command_makes_shows_and_lists(tmp_path: Path) -> None:
    made = runner.invoke(app, ["keys", "new", AGENCY, "--dir", str(tmp_path)])
    assert made.exit_code == 0, made.output
    public = made.output.strip().splitlines()[-1]
    shown = runner.invoke(app, ["keys", "show", AGENCY, "--dir", str(tmp_path)])
    assert shown.output.strip() == public
    as_jwk = runner.invoke(app, ["keys", "show", AGENCY, "--jwk", "--dir", str(tmp_path)])
    key = load_agency_key(tmp_path, AGENCY).public_key()
    assert json.loads(as_jwk.output) == public_jwk(AGENCY, key)
    listed = runner.invoke(app, ["keys", "list", "--dir", str(tmp_path)])
    assert AGENCY in listed.output and public in listed.output
    again = runner.invoke(app, ["keys", "new", AGENCY, "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "--replace" in _flat(again.output)
    unknown = runner.invoke(app, ["keys", "show", "000.00.12.H12", "--dir", str(tmp_path)])
    assert unknown.exit_code == 1 and "bus keys new 000.00.12.H12" in _flat(unknown.output)


def _flat(output: str) -> str:
    """The console's text without the line breaks it wraps at."""
    return " ".join(output.split())
