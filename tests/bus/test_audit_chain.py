"""The audit chain's arithmetic and its checks, without a database: hashing, walking, evidence."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.audit.chain import (
    GENESIS_HASH,
    SealedContent,
    canonical_json,
    canonical_time,
    content_digest,
    link_hash,
)
from bus.audit.evidence import (
    ChainHead,
    ChainLink,
    EvidenceExport,
    build_evidence,
    check_evidence,
    check_evidence_bytes,
)
from bus.audit.walk import ChainWalk, StoredRecord

T0 = datetime(2026, 11, 22, 1, 2, 3, 456789, tzinfo=UTC)
CODE = "000.00.10.H12-240315-0001"
OTHER = "000.00.10.H12-240315-0002"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_is_what_the_standard_library_writes(value: Any) -> None:
    """Anyone can recompute a hash with json.dumps: the canonical bytes are exactly its output."""
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode("utf-8")


def test_one_instant_has_one_text_whatever_its_zone() -> None:
    """The same instant written in Hanoi time or in UTC gives the same text, in UTC."""
    hanoi = T0.astimezone(timezone(timedelta(hours=7)))
    assert canonical_time(hanoi) == canonical_time(T0) == "2026-11-22T01:02:03.456789+00:00"
    assert canonical_time(T0.replace(microsecond=0)).endswith(".000000+00:00")
    with pytest.raises(ValueError, match="aware"):
        canonical_time(T0.replace(tzinfo=None))


def _content(seq: int = 1, **changes: Any) -> SealedContent:
    base = SealedContent(seq, T0, "hop", CODE, "m-1", {"outcome": "delivered", "attempt": 1})
    return replace(base, **changes)


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2},
        {"recorded_at": T0 + timedelta(microseconds=1)},
        {"kind": "event"},
        {"dossier_code": OTHER},
        {"dossier_code": None},
        {"subject": "m-2"},
        {"payload": {"outcome": "delivered", "attempt": 2}},
        {"payload": {"outcome": "delivered", "attempt": 1, "extra": None}},
    ],
)
def test_every_field_is_in_the_digest(change: dict[str, Any]) -> None:
    """Changing any one field of a record changes its digest."""
    assert content_digest(_content(**change)) != content_digest(_content())


def test_the_digest_ignores_key_order_but_not_values() -> None:
    """A payload read back with its keys in another order (JSONB) hashes the same."""
    reordered = _content(payload={"attempt": 1, "outcome": "delivered"})
    assert content_digest(reordered) == content_digest(_content())


def test_the_hash_chains_seq_link_and_digest() -> None:
    """The hash changes with the previous hash, the seq and the digest."""
    digest = content_digest(_content())
    base = link_hash(1, GENESIS_HASH, digest)
    assert len(base) == 64 and int(base, 16) >= 0
    assert link_hash(2, GENESIS_HASH, digest) != base
    assert link_hash(1, "1" * 64, digest) != base
    assert link_hash(1, GENESIS_HASH, content_digest(_content(subject="x"))) != base


def _chain(n: int, *, dossier: Any = lambda seq: CODE if seq % 2 else OTHER) -> list[StoredRecord]:
    """A valid chain of ``n`` records, odd seqs about CODE and even ones about OTHER."""
    records: list[StoredRecord] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        kind = "event" if seq % 3 == 0 else "hop"
        payload: dict[str, Any] = {"n": seq}
        if kind == "event":
            body = {"type": "vn.lienthong.dossier.status_changed", "id": f"e-{seq}"}
            payload = {
                "event_id": f"e-{seq}",
                "routing_key": "dossier.status.9",
                "body": json.dumps(body),
            }
        content = SealedContent(
            seq, T0 + timedelta(seconds=seq), kind, dossier(seq), f"s-{seq}", payload
        )
        digest = content_digest(content)
        record_hash = link_hash(seq, prev, digest)
        records.append(
            StoredRecord(
                id=100 + seq,
                seq=seq,
                recorded_at=content.recorded_at,
                kind=kind,
                dossier_code=content.dossier_code,
                subject=content.subject,
                payload=payload,
                digest=digest,
                prev_hash=prev,
                hash=record_hash,
            )
        )
        prev = record_hash
    return records


def _walk(records: list[StoredRecord], head: tuple[int, str] | None = None) -> Any:
    walk = ChainWalk()
    for record in records:
        problem = walk.check(record)
        if problem is not None:
            return problem
    if head is None:
        head = (records[-1].seq, records[-1].hash) if records else (0, GENESIS_HASH)
    return walk.finish(*head)


def test_an_untouched_chain_walks_through() -> None:
    """A chain written by the rules has no problem, and the walk ends on its last hash."""
    records = _chain(10)
    assert _walk(records) is None
    assert _walk([]) is None


def test_a_changed_payload_is_named_at_its_record() -> None:
    """A record whose payload changed is reported as content changed, with its seq and id."""
    records = _chain(10)
    records[4] = replace(records[4], payload={"n": 999})
    problem = _walk(records)
    assert (problem.kind, problem.seq, problem.record_id) == ("content changed", 5, 105)
    assert problem.dossier_code == CODE
    assert "seq 5 (id 105)" in problem.describe()


def test_a_record_rewritten_with_new_hashes_breaks_the_next_link() -> None:
    """Rewriting a record with a fresh digest and hash leaves the next record's link broken."""
    records = _chain(10)
    forged = replace(records[4], payload={"n": 999})
    digest = content_digest(forged.content)
    records[4] = replace(forged, digest=digest, hash=link_hash(5, forged.prev_hash, digest))
    problem = _walk(records)
    assert (problem.kind, problem.seq) == ("link broken", 6)
    assert "seq 5 (id 105)" in problem.detail


def test_a_deleted_record_is_a_gap() -> None:
    """A record missing from the middle is named as a gap before the next one."""
    records = _chain(10)
    del records[3]
    problem = _walk(records)
    assert (problem.kind, problem.seq) == ("gap", 5)
    assert "seq 4" in problem.detail


def test_deleted_last_records_show_at_the_head() -> None:
    """Records deleted from the end are caught by the head row, which still names them."""
    records = _chain(10)
    problem = _walk(records[:8], head=(10, records[-1].hash))
    assert problem.kind == "head mismatch" and "seq 9 to 10" in problem.detail
    assert _walk(records, head=(10, "f" * 64)).kind == "head mismatch"


def _export(records: list[StoredRecord], dossier: str = CODE) -> EvidenceExport:
    own = [r for r in records if r.dossier_code == dossier]
    first = own[0].seq
    links = [
        ChainLink(seq=r.seq, digest=r.digest, prev_hash=r.prev_hash, hash=r.hash)
        for r in records
        if r.seq >= first
    ]
    return build_evidence(
        dossier_code=dossier,
        document={"code": dossier},
        records=own,
        links=links,
        head=ChainHead(seq=records[-1].seq, hash=records[-1].hash),
        exported_at=T0,
    )


def test_an_export_holds_and_names_only_digests_of_other_dossiers() -> None:
    """A fresh export checks, and the other dossier's records appear by digest only."""
    export = _export(_chain(12))
    assert check_evidence(export) is None
    assert {r.dossier_code for r in export.records} == {CODE}
    assert [link.seq for link in export.chain.links] == list(range(1, 13))
    assert OTHER not in export.model_dump_json()
    assert [e.seq for e in export.events] == [3, 9]
    assert export.signatures.items == []  # none are recorded: none are made up
    assert check_evidence_bytes(export.model_dump_json().encode()) is None


def _tampered(export: EvidenceExport, change: Any) -> Any:
    data = export.model_dump(mode="json")
    change(data)
    return check_evidence_bytes(json.dumps(data).encode())


def test_a_tampered_export_names_its_first_problem() -> None:
    """Each kind of tampering with an export file is caught and named."""
    export = _export(_chain(12))

    def payload(data: dict[str, Any]) -> None:
        data["records"][1]["payload"]["n"] = 0

    def proof_link(data: dict[str, Any]) -> None:
        data["chain"]["links"][5]["digest"] = "0" * 64

    def dropped_link(data: dict[str, Any]) -> None:
        del data["chain"]["links"][5]

    def head(data: dict[str, Any]) -> None:
        data["chain"]["head"]["hash"] = "0" * 64

    def document(data: dict[str, Any]) -> None:
        data["document"]["code"] = OTHER

    def event_body(data: dict[str, Any]) -> None:
        data["events"][0]["body"]["id"] = "forged"

    def invented_signature(data: dict[str, Any]) -> None:
        data["signatures"]["items"].append(
            {"seq": 1, "subject": "s-1", "name": "signature", "value": "forged"}
        )

    problem = _tampered(export, payload)
    assert (problem.kind, problem.seq) == ("content changed", 3)
    problem = _tampered(export, proof_link)
    assert (problem.kind, problem.seq) == ("link broken", 6)
    assert _tampered(export, dropped_link).kind == "gap"
    assert _tampered(export, head).kind == "head mismatch"
    assert _tampered(export, event_body).kind == "content changed"
    assert _tampered(export, invented_signature).kind == "content changed"
    assert _tampered(export, lambda data: data.pop("chain")).kind == "malformed export"
    assert check_evidence_bytes(b"not json").kind == "malformed export"
    # This chain sealed no submitted event, so nothing seals the document: the next test
    # shows the check once one is there.
    assert _tampered(export, document) is None


def _first_event(body: dict[str, object]) -> StoredRecord:
    """The chain's first record: an event of the dossier with ``body``."""
    content = SealedContent(
        1,
        T0,
        "event",
        CODE,
        "e-1",
        {"event_id": "e-1", "routing_key": "r", "body": json.dumps(body)},
    )
    digest = content_digest(content)
    return StoredRecord(
        1, 1, T0, "event", CODE, "e-1", content.payload, digest, GENESIS_HASH,
        link_hash(1, GENESIS_HASH, digest),
    )  # fmt: skip


def test_the_document_must_be_the_one_its_submitted_event_sealed() -> None:
    """An export whose document differs from the dossier in its sealed submitted event fails."""
    body = {"type": "vn.lienthong.dossier.submitted", "data": {"code": CODE}}
    export = _export([_first_event(body)])
    assert check_evidence(export) is None
    tampered = export.model_copy(update={"document": {"code": CODE, "forged": True}})
    assert check_evidence(tampered).kind == "content changed"


def test_signatures_recorded_with_a_message_are_listed_as_recorded() -> None:
    """A signature a sealed event carried is listed with its record; nothing else is."""
    body = {"type": "vn.lienthong.dossier.status_changed", "signature": "ed25519:abc"}
    export = _export([_first_event(body)])
    assert [(s.seq, s.name, s.value) for s in export.signatures.items] == [
        (1, "body.signature", "ed25519:abc")
    ]
    assert check_evidence(export) is None
