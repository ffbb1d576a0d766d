"""The agencies' signing keys: one Ed25519 key per agency the bus signs partner calls for.

A connector that signs (``[signing]`` in its ``connector.toml``) signs every call to its partner
with the key of the agency it speaks for, as X-Road's security server signs with its member's
key. The keys live in one directory (``BUS_AGENCY_KEYS_DIR``), a PEM file (PKCS#8, readable by
its owner only) per agency code: ``000.00.00.H12.pem``. ``bus keys new AGENCY`` makes one and
prints its public half for the partner; ``GET /v1/keys`` publishes every public half, key id =
agency code, so partners can fetch them. Nothing here makes a key by itself: a key the partner
has never been given is worse than a clear "no key" at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import TypeAdapter, ValidationError

from bus.security.keyfiles import read_key, write_new_key
from contracts import AgencyCode

__all__ = [
    "AGENCY_KEYS_DIR_ENV",
    "DEFAULT_AGENCY_KEYS_DIR",
    "AgencyKeyError",
    "agency_keys_dir",
    "create_agency_key",
    "load_agency_key",
    "public_agency_keys",
]

AGENCY_KEYS_DIR_ENV: Final = "BUS_AGENCY_KEYS_DIR"
DEFAULT_AGENCY_KEYS_DIR: Final = "var/keys/agencies"
_SUFFIX: Final = ".pem"
_AGENCY: Final = TypeAdapter(AgencyCode)


class AgencyKeyError(ValueError):
    """Raised when an agency's key is missing, unreadable or not Ed25519; says what to do."""


def agency_keys_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The directory of agency keys: ``BUS_AGENCY_KEYS_DIR``, else ``var/keys/agencies``."""
    env = os.environ if environ is None else environ
    return Path(env.get(AGENCY_KEYS_DIR_ENV) or DEFAULT_AGENCY_KEYS_DIR)


def _checked(agency: str) -> str:
    try:
        return _AGENCY.validate_python(agency)
    except ValidationError as exc:
        raise AgencyKeyError(f"{agency!r} is not an agency code (e.g. 000.00.10.H12)") from exc


def _key_path(directory: Path, agency: str) -> Path:
    return directory / f"{_checked(agency)}{_SUFFIX}"


def load_agency_key(directory: Path, agency: str) -> Ed25519PrivateKey:
    """The signing key of ``agency``; :class:`AgencyKeyError` saying how to make it if absent."""
    path = _key_path(directory, agency)
    if not path.exists():
        raise AgencyKeyError(
            f"no signing key for agency {agency} in {directory}: make one with "
            f"`bus keys new {agency}` and give its public half to the partner "
            f"(or point {AGENCY_KEYS_DIR_ENV} at the directory that holds it)"
        )
    try:
        return read_key(path)
    except ValueError as exc:
        raise AgencyKeyError(str(exc)) from exc


def create_agency_key(directory: Path, agency: str, *, replace: bool = False) -> Ed25519PrivateKey:
    """Make a new key for ``agency``, readable by its owner only. An existing key is kept
    (:class:`AgencyKeyError`) unless ``replace``: partners verify with the old one until told."""
    path = _key_path(directory, agency)
    try:
        return write_new_key(path, replace=replace)
    except FileExistsError as exc:
        raise AgencyKeyError(
            f"agency {agency} already has a key ({path}); `bus keys new {agency} --replace` "
            "makes a new one, which its partners must then be given"
        ) from exc


def public_agency_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """The public half of every agency key in ``directory``, by agency code (none if absent).

    A file that is not an agency's key is skipped, so one stray file cannot hide the others.
    """
    if not directory.is_dir():
        return {}
    found: dict[str, Ed25519PublicKey] = {}
    for path in sorted(directory.glob(f"*{_SUFFIX}")):
        agency = path.name.removesuffix(_SUFFIX)
        try:
            found[agency] = load_agency_key(directory, agency).public_key()
        except AgencyKeyError:
            continue
    return found
