"""Bringing a database's schema up to date with Alembic, from code or from the CLI."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import OperationalError

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration pointing at the packaged migrations and ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision``; safe to run from several processes at once."""
    config = alembic_config(database_url)
    for attempt in range(5):
        try:
            command.upgrade(config, revision)
            return
        except OperationalError:
            # Another process may hold SQLite's write lock while it migrates; try again.
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))


async def upgrade_async(database_url: str) -> None:
    """:func:`upgrade` from inside an event loop (Alembic's async env runs its own loop)."""
    await asyncio.to_thread(upgrade, database_url)
