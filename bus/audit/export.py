"""Reading one dossier's evidence out of the store: its records and their proof to the head."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from bus.audit.evidence import ChainHead, ChainLink, EvidenceExport, build_evidence, check_evidence
from bus.audit.walk import ChainProblem
from bus.store import audit as store

__all__ = [
    "DEFAULT_MAX_LINKS",
    "ChainBroken",
    "EvidenceUnavailable",
    "ProofTooLong",
    "UnknownDossier",
    "export_evidence",
]

#: About 250 bytes of JSON a link: 100,000 links is a file of some 25 MB. At tens of thousands
#: of records a day, that reaches a few days back from the head; evidence of a dossier whose
#: first record is older takes a larger bound (the CLI has no ceiling).
DEFAULT_MAX_LINKS: Final = 100_000


class EvidenceUnavailable(Exception):
    """The export cannot be made; the message says why and what to do."""


class UnknownDossier(EvidenceUnavailable):
    """No such dossier on this bus."""


class ProofTooLong(EvidenceUnavailable):
    """The chain proof would hold more links than allowed."""

    def __init__(self, needed: int, allowed: int) -> None:
        super().__init__(
            f"the chain proof from the dossier's first record to the head needs {needed} links, "
            f"more than the {allowed} allowed; ask for a larger bound"
        )
        self.needed = needed


class ChainBroken(EvidenceUnavailable):
    """The stored chain itself fails its check within the span of the export."""

    def __init__(self, problem: ChainProblem) -> None:
        super().__init__(
            f"the audit chain is broken: {problem.describe()}; run `bus audit verify` and "
            "investigate before exporting evidence"
        )
        self.problem = problem


async def export_evidence(
    engine: AsyncEngine, dossier_code: str, *, max_links: int = DEFAULT_MAX_LINKS
) -> EvidenceExport:
    """The evidence of ``dossier_code``, with the chain proof up to the current head.

    The span of the proof is fixed by what a hash chain can prove: a record's hash commits to
    the records before it and to nothing after, so showing that the head (the one value an
    auditor keeps, or compares with ``bus audit verify``) depends on the dossier's records
    takes every link from its first record to the head; nothing before its first record is
    needed. There are no shortcuts in a chain, so the proof grows with the records written
    since the dossier began, and ``max_links`` bounds it rather than producing files no one
    can handle: an export that would exceed it is refused, saying how many links it needs.
    """
    async with store.snapshot(engine) as connection:
        head = await store.read_head(connection)
        document = await store.dossier_document(connection, dossier_code)
        if document is None:
            raise UnknownDossier(f"no dossier {dossier_code} on this bus")
        if head is None:
            raise ChainBroken(
                ChainProblem("head mismatch", "the head row is missing: it was deleted")
            )
        records = await store.dossier_records(connection, dossier_code, head.seq)
        links: list[ChainLink] = []
        if records:
            needed = head.seq - records[0].seq + 1
            if needed > max_links:
                raise ProofTooLong(needed, max_links)
            async for seq, digest, prev_hash, record_hash in store.chain_links(
                connection, records[0].seq, head.seq
            ):
                links.append(
                    ChainLink(seq=seq, digest=digest, prev_hash=prev_hash, hash=record_hash)
                )
    export = build_evidence(
        dossier_code=dossier_code,
        document=document,
        records=records,
        links=links,
        head=ChainHead(seq=head.seq, hash=head.hash),
        exported_at=datetime.now(UTC),
    )
    # The export is checked as its reader will check it: a record rewritten in the store is
    # reported here, to the operator, rather than handed out as evidence that fails later.
    problem = check_evidence(export)
    if problem is not None:
        raise ChainBroken(problem)
    return export
