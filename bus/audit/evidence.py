"""One dossier's evidence as a single JSON document, and checking such a document offline.

An export holds the dossier's document as stored, every audit record of the dossier in full,
the event bodies those records sealed, the signatures recorded with them, and a chain proof:
for every record from the dossier's first one to the head of the chain at export time, its
seq, digest, prev_hash and hash. Anyone can recompute the dossier's records' digests from their
content, then every hash from its seq, prev_hash and digest (:mod:`bus.audit.chain`), and
arrive at the head hash. The other dossiers' records appear by digest only, never by content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, Field, ValidationError

from bus.audit.chain import SealedContent, canonical_time, content_digest, link_hash
from bus.audit.walk import ChainProblem, ProblemKind, StoredRecord

__all__ = [
    "EVIDENCE_FORMAT",
    "ChainLink",
    "ChainProof",
    "EvidenceExport",
    "ExportedEvent",
    "ExportedRecord",
    "SignatureRecord",
    "build_evidence",
    "check_evidence",
    "check_evidence_bytes",
]

EVIDENCE_FORMAT: Final = "urn:lienthong:evidence:1"
#: What an auditor needs to recompute every hash without this code.
ALGORITHM: Final = (
    "canonical(x) = JSON with sorted keys, no spaces, UTF-8 (json.dumps(x, sort_keys=True, "
    "separators=(',', ':'), ensure_ascii=False)); digest = SHA-256(canonical({seq, "
    "recorded_at, kind, dossier_code, subject, payload})); hash = SHA-256(canonical({seq, "
    "prev_hash, digest})); a record's prev_hash is the hash of the record before it"
)
_SIGNATURE_NOTE: Final = (
    "Signatures recorded with this dossier's messages, taken from its sealed records: for each "
    "signed exchange with a partner (RFC 9421, Ed25519), the fields of the request the bus "
    "signed for an agency and of the partner's answer (its Request-Hash names the request), "
    "and whether the answer's signature verified. Verify a request with the agency's public "
    "key (GET /v1/keys, key id = agency code)."
)
#: Event kinds whose body is a bus event (CloudEvent JSON) held as text in the payload.
_EVENT_KIND: Final = "event"
_SUBMITTED_TYPE: Final = "vn.lienthong.dossier.submitted"


class ExportedRecord(BaseModel):
    """One audit record of the dossier, in full."""

    id: int
    seq: int = Field(ge=1)
    recorded_at: str = Field(description="ISO 8601 in UTC with microseconds, as hashed")
    kind: str = Field(description="hop or event")
    dossier_code: str | None
    subject: str = Field(description="The message or event id")
    payload: dict[str, Any]
    digest: str
    prev_hash: str
    hash: str


class ExportedEvent(BaseModel):
    """An event the bus emitted about the dossier, its body as sealed in the record ``seq``."""

    seq: int
    event_id: str
    routing_key: str
    body: Any = Field(description="The CloudEvent as published")


class SignatureRecord(BaseModel):
    """A signature found in a sealed record: where, under which name, and its value."""

    seq: int
    subject: str
    name: str
    value: Any


class Signatures(BaseModel):
    """The signatures recorded with the dossier's messages."""

    note: str
    items: list[SignatureRecord]


class ChainLink(BaseModel):
    """One record's place in the chain: enough to recompute its hash from the previous one."""

    seq: int = Field(ge=1)
    digest: str
    prev_hash: str
    hash: str


class ChainHead(BaseModel):
    """The chain's last record when the export was made."""

    seq: int = Field(ge=0)
    hash: str


class ChainProof(BaseModel):
    """Every link from the dossier's first record to the head, in seq order."""

    algorithm: str
    head: ChainHead
    links: list[ChainLink]


class EvidenceExport(BaseModel):
    """``bus audit export`` and ``GET /v1/dossiers/{code}/evidence``: one dossier's evidence."""

    format: Literal["urn:lienthong:evidence:1"]
    dossier_code: str
    exported_at: str
    document: dict[str, Any] = Field(description="The canonical dossier as stored")
    records: list[ExportedRecord]
    events: list[ExportedEvent]
    signatures: Signatures
    chain: ChainProof


def build_evidence(
    *,
    dossier_code: str,
    document: Mapping[str, Any],
    records: Sequence[StoredRecord],
    links: Sequence[ChainLink],
    head: ChainHead,
    exported_at: datetime,
) -> EvidenceExport:
    """The export of ``records`` (the dossier's, in seq order) with their chain proof."""
    exported = [_exported(record) for record in records]
    return EvidenceExport(
        format=EVIDENCE_FORMAT,
        dossier_code=dossier_code,
        exported_at=canonical_time(exported_at),
        document=dict(document),
        records=exported,
        events=list(_events(exported)),
        signatures=Signatures(note=_SIGNATURE_NOTE, items=list(_signatures(exported))),
        chain=ChainProof(algorithm=ALGORITHM, head=head, links=list(links)),
    )


def check_evidence_bytes(raw: bytes) -> ChainProblem | None:
    """:func:`check_evidence` of an export file's bytes; an unreadable file is a problem too."""
    try:
        export = EvidenceExport.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        return ChainProblem("malformed export", f"{where}: {first['msg']}")
    return check_evidence(export)


def check_evidence(export: EvidenceExport) -> ChainProblem | None:
    """The first problem of an export, checked with nothing but its own content."""
    links = export.chain.links
    head = export.chain.head
    if not export.records:
        if links:
            return ChainProblem("malformed export", "a chain proof without records to prove")
        return None
    first_seq = export.records[0].seq
    by_seq = {link.seq: link for link in links}
    previous_seq = 0
    for record in export.records:
        problem = _check_record(export, record, previous_seq, by_seq.get(record.seq))
        if problem is not None:
            return problem
        previous_seq = record.seq
    problem = _check_links(links, first_seq, head)
    if problem is not None:
        return problem
    return _check_derived(export)


def _check_record(
    export: EvidenceExport, record: ExportedRecord, previous_seq: int, link: ChainLink | None
) -> ChainProblem | None:
    """A record's own content against its digest and hash, and against its proof link."""

    def problem(kind: ProblemKind, detail: str) -> ChainProblem:
        return ChainProblem(kind, detail, record.seq, record.id, record.dossier_code)

    if record.seq <= previous_seq:
        return problem("malformed export", "records are not in increasing seq order")
    if record.dossier_code != export.dossier_code:
        return problem(
            "malformed export", f"a record of another dossier than {export.dossier_code}"
        )
    try:
        recorded_at = datetime.fromisoformat(record.recorded_at)
        canonical = canonical_time(recorded_at)
    except ValueError:
        canonical = None
    if canonical != record.recorded_at:
        return problem("malformed export", "recorded_at is not ISO 8601 UTC with microseconds")
    content = SealedContent(
        record.seq, recorded_at, record.kind, record.dossier_code, record.subject, record.payload
    )
    digest = content_digest(content)
    if digest != record.digest:
        return problem("content changed", "its content no longer matches the digest sealed with it")
    if link_hash(record.seq, record.prev_hash, digest) != record.hash:
        return problem("content changed", "its hash does not match its digest and link")
    if link is None or (link.digest, link.prev_hash, link.hash) != (
        record.digest,
        record.prev_hash,
        record.hash,
    ):
        return problem("link broken", "the record does not match its place in the chain proof")
    return None


def _check_links(
    links: Sequence[ChainLink], first_seq: int, head: ChainHead
) -> ChainProblem | None:
    """The proof: consecutive links from the first record, each hash recomputed, to the head."""
    if not links or links[0].seq != first_seq:
        return ChainProblem(
            "malformed export", "the chain proof does not start at the dossier's first record"
        )
    previous: ChainLink | None = None
    for link in links:
        if previous is not None:
            if link.seq != previous.seq + 1:
                return ChainProblem(
                    "gap",
                    f"the chain proof skips from seq {previous.seq} to seq {link.seq}",
                    seq=link.seq,
                )
            if link.prev_hash != previous.hash:
                return ChainProblem(
                    "link broken",
                    f"its prev_hash is not the hash of seq {previous.seq} in the proof",
                    seq=link.seq,
                )
        if link_hash(link.seq, link.prev_hash, link.digest) != link.hash:
            return ChainProblem(
                "link broken",
                "its hash in the proof is not the hash of its seq, prev_hash and digest",
                seq=link.seq,
            )
        previous = link
    last = links[-1]
    if (last.seq, last.hash) != (head.seq, head.hash):
        return ChainProblem(
            "head mismatch",
            f"the chain proof ends at seq {last.seq}, not at the head (seq {head.seq}) with its "
            "hash",
            seq=head.seq,
        )
    return None


def _check_derived(export: EvidenceExport) -> ChainProblem | None:
    """The events, signatures and document agree with what the records sealed."""
    if [e.model_dump() for e in export.events] != [e.model_dump() for e in _events(export.records)]:
        return ChainProblem(
            "content changed", "the events section differs from the event bodies sealed"
        )
    sealed = [s.model_dump() for s in _signatures(export.records)]
    if [s.model_dump() for s in export.signatures.items] != sealed:
        return ChainProblem(
            "content changed", "the signatures section differs from the signatures sealed"
        )
    for event in export.events:
        body = event.body
        if isinstance(body, dict) and body.get("type") == _SUBMITTED_TYPE:
            if body.get("data") != export.document:
                return ChainProblem(
                    "content changed",
                    "the document differs from the dossier its submitted event sealed",
                    seq=event.seq,
                )
            break
    return None


def _exported(record: StoredRecord) -> ExportedRecord:
    return ExportedRecord(
        id=record.id,
        seq=record.seq,
        recorded_at=canonical_time(record.recorded_at),
        kind=record.kind,
        dossier_code=record.dossier_code,
        subject=record.subject,
        payload=dict(record.payload),
        digest=record.digest,
        prev_hash=record.prev_hash,
        hash=record.hash,
    )


def _events(records: Iterable[ExportedRecord]) -> Iterable[ExportedEvent]:
    """The events the records sealed, their bodies parsed for reading."""
    for record in records:
        if record.kind != _EVENT_KIND:
            continue
        payload = record.payload
        body = payload.get("body")
        yield ExportedEvent(
            seq=record.seq,
            event_id=str(payload.get("event_id", record.subject)),
            routing_key=str(payload.get("routing_key", "")),
            body=_parsed(body),
        )


def _parsed(body: Any) -> Any:
    """An event body held as text, parsed; ``None`` when it is not JSON text."""
    if not isinstance(body, str):
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _signatures(records: Iterable[ExportedRecord]) -> Iterable[SignatureRecord]:
    """Every field named like a signature in a sealed hop or event envelope, as recorded.

    Nothing is made up: a record carries a signature only if its message came with one.
    """
    for record in records:
        fields: dict[str, Any] = dict(record.payload)
        if record.kind == _EVENT_KIND:
            envelope = _parsed(fields.get("body"))
            if isinstance(envelope, dict):
                fields = {**fields, **{f"body.{k}": v for k, v in envelope.items()}}
        for name, value in sorted(fields.items()):
            if "signature" not in name.lower() or value is None:
                continue
            # A hop's signed exchanges are a list: one item per exchange.
            values = enumerate(value) if isinstance(value, list) else [(None, value)]
            for index, one in values:
                yield SignatureRecord(
                    seq=record.seq,
                    subject=record.subject,
                    name=name if index is None else f"{name}[{index}]",
                    value=one,
                )
