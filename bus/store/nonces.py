"""Replay protection for signed requests: each (client, nonce) is accepted once.

A signature is accepted only while it is younger than its maximum age, so a nonce needs keeping
only that long: each call forgets the nonces older than that, in the same transaction that
records the new one, and the table stays the size of one window of signed traffic. The primary
key does the deciding, so two API processes given the same request accept it once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.database import insert_ignoring_duplicates, write_transaction
from bus.store.schema import signature_nonces

__all__ = ["first_use_of_nonce"]


async def first_use_of_nonce(
    engine: AsyncEngine, client_id: str, nonce: str, signed_at: datetime, *, keep: timedelta
) -> bool:
    """Record the nonce; False when this client used it already (the request is a replay)."""
    async with write_transaction(engine) as connection:
        await connection.execute(
            sa.delete(signature_nonces).where(signature_nonces.c.signed_at < signed_at - 2 * keep)
        )
        inserted = await connection.execute(
            insert_ignoring_duplicates(signature_nonces, connection.dialect.name).values(
                client_id=client_id, nonce=nonce, signed_at=signed_at
            )
        )
        return inserted.rowcount == 1
