"""Planner statistics for the store's busiest tables, when PostgreSQL's autovacuum is off.

The outbox, the dedup record and the dossiers change every few milliseconds. PostgreSQL plans
their queries from statistics that autovacuum's analyze keeps fresh; with autovacuum switched
off a new database never gets any, and the planner guesses: on a test server the statement that
places confirmed events in the stream went from about 3 ms to about 600 ms by 60,000 rows,
scanning a whole index for each event. The bus then analyzes these tables itself, once a
minute (:class:`bus.relay.OutboxRelay` calls :func:`refresh`), and says so in its log; dead rows
still wait for a vacuum, which is the administrator's to schedule.
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.schema import (
    consumer_positions,
    dossiers,
    hops,
    outbox,
    processed_messages,
    status_history,
)

log = logging.getLogger(__name__)

#: The tables every dossier writes to, and that hot queries filter.
BUSY_TABLES: Final = (
    outbox,
    processed_messages,
    consumer_positions,
    dossiers,
    hops,
    status_history,
)


async def analyze_needed(engine: AsyncEngine) -> bool:
    """Whether the bus must keep its own statistics: PostgreSQL with autovacuum off."""
    if engine.dialect.name != "postgresql":
        return False  # SQLite plans from its schema; its queries need no statistics
    async with engine.connect() as connection:
        setting = await connection.exec_driver_sql("SELECT current_setting('autovacuum')")
        if setting.scalar_one() == "on":
            return False
    log.warning(
        "PostgreSQL's autovacuum is off: the bus analyzes its busiest tables itself once a "
        "minute so that their query plans stay sound; dead rows still need a VACUUM "
        "(turn autovacuum on: ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf();)"
    )
    return True


async def refresh(engine: AsyncEngine) -> None:
    """ANALYZE the busy tables (a sample of each; no lock that blocks writers)."""
    names = ", ".join(table.name for table in BUSY_TABLES)
    async with engine.connect() as connection:
        await connection.exec_driver_sql(f"ANALYZE {names}")
        await connection.commit()
