"""The audit chain's arithmetic: canonical encoding, content digests and chained hashes.

Pure functions shared by the writer (:mod:`bus.store.audit`), ``bus audit verify`` and the
offline check of an evidence export, so all three compute exactly the same bytes.

Each record is sealed in two steps::

    digest = SHA-256(canonical {seq, recorded_at, kind, dossier_code, subject, payload})
    hash   = SHA-256(canonical {seq, prev_hash, digest})

The hash covers every field through the digest and the previous record through ``prev_hash``,
so changing, removing or reordering any record breaks a link. Splitting content from link lets
an evidence export prove that one dossier's records lead to the head of the chain by giving
only the digests of the other dossiers' records, never their content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson

__all__ = [
    "GENESIS_HASH",
    "SealedContent",
    "canonical_json",
    "canonical_time",
    "content_digest",
    "jsonable",
    "link_hash",
]

#: The ``prev_hash`` of the first record (seq 1), and the head of an empty chain. Migration
#: 0008 seeds ``audit_head`` with it.
GENESIS_HASH: Final = "0" * 64


def canonical_json(value: Any) -> bytes:
    """Sorted-key, compact JSON in UTF-8: the bytes every hash of the chain is taken over.

    For the values the chain holds (strings, integers, booleans, null, lists and objects) these
    are exactly the bytes of ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False).encode()``, so anyone can recompute a hash without this code;
    orjson is used because it is several times faster on the commit path.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def canonical_time(value: datetime) -> str:
    """An instant as ISO 8601 in UTC with microseconds, e.g. ``2026-11-22T00:01:55.267828+00:00``.

    Fixed precision, so the same instant always gives the same text whatever zone it came in.
    """
    if value.tzinfo is None:
        raise ValueError("the audit log only records aware datetimes")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


#: Types stored as they are.
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    """``value`` with datetimes and dates as text, ready to be stored and hashed as JSON.

    What is stored is what was hashed: the JSON column gives this back unchanged, so a record
    read from either database hashes to the same digest.
    """
    if type(value) in _PLAIN:  # most values; an exact type check is the cheapest on this path
        return value
    if isinstance(value, datetime):
        return canonical_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class SealedContent:
    """The fields of one audit record that its digest covers."""

    seq: int
    recorded_at: datetime
    kind: str
    dossier_code: str | None
    subject: str
    payload: Mapping[str, Any]

    def canonical(self) -> dict[str, Any]:
        """The record's content as the JSON object that is digested."""
        return {
            "seq": self.seq,
            "recorded_at": canonical_time(self.recorded_at),
            "kind": self.kind,
            "dossier_code": self.dossier_code,
            "subject": self.subject,
            "payload": self.payload,
        }


def content_digest(content: SealedContent) -> str:
    """Hex SHA-256 of the record's canonical content."""
    return hashlib.sha256(canonical_json(content.canonical())).hexdigest()


def link_hash(seq: int, prev_hash: str, digest: str) -> str:
    """Hex SHA-256 chaining a record's digest to the hash of the record before it."""
    link = {"seq": seq, "prev_hash": prev_hash, "digest": digest}
    return hashlib.sha256(canonical_json(link)).hexdigest()
