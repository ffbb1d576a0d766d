"""``bus audit verify``'s work: read the whole chain in seq order, in batches, and check it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bus.audit.walk import ChainProblem, ChainWalk
from bus.store import audit as store

__all__ = ["Verification", "verify_chain"]


@dataclass(frozen=True, slots=True)
class Verification:
    """How many records were checked, the head, and the first problem found (if any)."""

    records: int
    head_seq: int
    head_hash: str
    problem: ChainProblem | None

    @property
    def intact(self) -> bool:
        """True when nothing is wrong."""
        return self.problem is None


async def verify_chain(
    engine: AsyncEngine,
    *,
    batch: int = 2_000,
    progress: Callable[[int], None] | None = None,
) -> Verification:
    """Check every record and the head row, in one snapshot; stops at the first problem.

    Only ``batch`` records are held at a time, so a chain of any length is checked in
    constant memory. ``progress`` is told the number of records checked after each batch.
    """
    walk = ChainWalk()
    async with store.snapshot(engine) as connection:
        head = await store.read_head(connection)
        while True:
            records = await store.records_after(connection, walk.last_seq, batch)
            for record in records:
                problem = walk.check(record)
                if problem is not None:
                    return _result(walk, head, problem)
            if progress is not None:
                progress(walk.count)
            if len(records) < batch:
                break
    if head is None:
        problem = ChainProblem("head mismatch", "the head row is missing: it was deleted")
        return _result(walk, head, problem)
    return _result(walk, head, walk.finish(head.seq, head.hash))


def _result(
    walk: ChainWalk, head: store.ChainHeadRow | None, problem: ChainProblem | None
) -> Verification:
    return Verification(
        records=walk.count,
        head_seq=head.seq if head else walk.last_seq,
        head_hash=head.hash if head else walk.last_hash,
        problem=problem,
    )
