"""Walking the audit chain record by record and naming the first record that breaks it.

Pure: ``bus audit verify`` feeds it the stored records in seq order, in batches, so a chain of
any length is checked in constant memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bus.audit.chain import GENESIS_HASH, SealedContent, content_digest, link_hash

__all__ = ["ChainProblem", "ChainWalk", "ProblemKind", "StoredRecord"]

#: What can be wrong: a record whose content or hash was rewritten, a record whose prev_hash is
#: not its predecessor's hash, missing seq numbers, a head row that disagrees with the records,
#: and (for an evidence export) a file that is not a well-formed export.
ProblemKind = Literal["content changed", "link broken", "gap", "head mismatch", "malformed export"]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One row of ``audit_log`` as read back."""

    id: int
    seq: int
    recorded_at: datetime
    kind: str
    dossier_code: str | None
    subject: str
    payload: Mapping[str, Any]
    digest: str
    prev_hash: str
    hash: str

    @property
    def content(self) -> SealedContent:
        """The fields its digest covers."""
        return SealedContent(
            self.seq, self.recorded_at, self.kind, self.dossier_code, self.subject, self.payload
        )


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first thing found wrong, and the record it is found at."""

    kind: ProblemKind
    detail: str
    seq: int | None = None
    record_id: int | None = None
    dossier_code: str | None = None

    def describe(self) -> str:
        """One line naming the record and what is wrong with it."""
        if self.seq is None:
            return f"{self.kind}: {self.detail}"
        where = f"record seq {self.seq}"
        if self.record_id is not None:
            where += f" (id {self.record_id})"
        if self.dossier_code:
            where += f", dossier {self.dossier_code}"
        return f"{where}: {self.kind} — {self.detail}"


class ChainWalk:
    """Checks records given in seq order; remembers only the last one."""

    def __init__(self) -> None:
        self.count = 0
        self.last_seq = 0
        self.last_hash = GENESIS_HASH
        self._last_id: int | None = None

    def check(self, record: StoredRecord) -> ChainProblem | None:
        """The problem ``record`` shows after the records already checked, if any."""
        expected = self.last_seq + 1
        if record.seq != expected:
            missing = (
                f"seq {expected}"
                if record.seq == expected + 1
                else f"seq {expected} to {record.seq - 1}"
            )
            return self._problem(
                record, "gap", f"the records before it ({missing}) are missing: deleted"
            )
        if record.prev_hash != self.last_hash:
            before = (
                "the genesis hash"
                if self._last_id is None
                else f"the hash of seq {self.last_seq} (id {self._last_id})"
            )
            return self._problem(
                record,
                "link broken",
                f"its prev_hash is not {before}: that record's hash or this link was rewritten",
            )
        digest = content_digest(record.content)
        if digest != record.digest:
            return self._problem(
                record, "content changed", "its content no longer matches the digest sealed with it"
            )
        if link_hash(record.seq, record.prev_hash, digest) != record.hash:
            return self._problem(
                record, "content changed", "its hash does not match its digest and link"
            )
        self.count += 1
        self.last_seq = record.seq
        self.last_hash = record.hash
        self._last_id = record.id
        return None

    def finish(self, head_seq: int, head_hash: str) -> ChainProblem | None:
        """The problem the head row shows against the records checked, if any."""
        if head_seq > self.last_seq:
            missing = (
                f"seq {head_seq}"
                if head_seq == self.last_seq + 1
                else f"seq {self.last_seq + 1} to {head_seq}"
            )
            return ChainProblem(
                "head mismatch",
                f"the head says the chain ends at seq {head_seq} but the last record is seq "
                f"{self.last_seq}: the records {missing} are missing (deleted from the end)",
                seq=head_seq,
            )
        if head_seq < self.last_seq:
            return ChainProblem(
                "head mismatch",
                f"the head says the chain ends at seq {head_seq} but records go on to seq "
                f"{self.last_seq}: the head row was rewritten",
                seq=head_seq,
            )
        if head_hash != self.last_hash:
            return ChainProblem(
                "head mismatch",
                f"the head's hash is not the hash of the last record (seq {self.last_seq}): the "
                "head row or the last record was rewritten",
                seq=head_seq,
                record_id=self._last_id,
            )
        return None

    @staticmethod
    def _problem(record: StoredRecord, kind: ProblemKind, detail: str) -> ChainProblem:
        return ChainProblem(kind, detail, record.seq, record.id, record.dossier_code)
