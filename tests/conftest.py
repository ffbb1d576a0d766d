"""Shared fixtures: real RabbitMQ and PostgreSQL on loopback, an isolated namespace per test."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from bus.security.clients import AgencyClient, ClientDirectory, ReadScope, hash_secret, save_clients
from bus.security.masking import install_log_masking, quiet_payload_loggers
from bus.settings import Settings
from bus.topology import Names

# As every bus process does at start-up: the logs the tests capture are the ones operators see.
install_log_masking()
quiet_payload_loggers()

AMQP_URL = os.environ.get("BUS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_ADMIN_DSN = os.environ.get(
    "BUS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: The secret of the test buses' one client, an operator with every right: tests that are not
#: about access rights send it (tests/integration/test_access.py tries the rights themselves).
TEST_OPERATOR_SECRET = "test-operator-" + "0" * 40
AUTH = {"X-API-Key": TEST_OPERATOR_SECRET}
TEST_AGENCY = "000.00.10.H12"
_SECURITY_DIR = Path(tempfile.mkdtemp(prefix="lienthong-test-security-"))
TEST_CLIENTS_FILE = _SECURITY_DIR / "clients.yaml"
#: The test buses' operator: every right, and a limit no load test reaches.
TEST_OPERATOR = AgencyClient(
    id="test-operator",
    name="The test suite",
    agency=TEST_AGENCY,
    secret_sha256=(hash_secret(TEST_OPERATOR_SECRET),),
    procedures=("*",),
    connectors=("*",),
    read=ReadScope.ALL,
    subscribe=("#",),
    operator=True,
    # Load and reliability tests push thousands of dossiers as this client.
    rate_limit="1000000/second",
)
save_clients(TEST_CLIENTS_FILE, ClientDirectory((TEST_OPERATOR,)))
FAST_RETRIES = (0.2, 0.4)
#: Every retry tier a test may declare (FAST_RETRIES, and the slower ones of the reliability
#: tests): the cleanup deletes them all, since a leaked quorum queue costs the broker for good.
CLEANED_RETRY_DELAYS = (*FAST_RETRIES, 1.0, 2.0)


@pytest.fixture
def namespace() -> str:
    """A broker namespace of this test alone, so tests never see each other's messages."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite store file."""
    return f"sqlite+aiosqlite:///{tmp_path / 'bus.sqlite3'}"


async def _postgres_admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A throw-away database on the local PostgreSQL, dropped after the test."""
    name = f"bus_test_{uuid.uuid4().hex[:12]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """Each store test runs against SQLite and against the local PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url
    url: str = request.getfixturevalue("postgres_url")
    return url


#: The linkage bundles every test bus runs unless it says otherwise: none. Tests of the
#: transport (retries, circuit, pushes, streams) follow one hop, a birth registration alone;
#: the linkage tests (tests/integration/test_linkage.py) run the bundles with ``ALL_BUNDLES``.
NO_BUNDLES: tuple[str, ...] = ()
ALL_BUNDLES = None


def make_settings(namespace: str, database_url: str, **overrides: object) -> Settings:
    """Settings for a test bus: its own namespace and store, fast retries, no bundles."""
    values: dict[str, object] = {
        "amqp_url": AMQP_URL,
        "database_url": database_url,
        "namespace": namespace,
        "retry_delays": FAST_RETRIES,
        "delivery_limit": 5,
        "outbox_poll_interval": 0.05,
        "linkage_bundles": NO_BUNDLES,
        "clients_file": str(TEST_CLIENTS_FILE),
        "token_key_file": str(_SECURITY_DIR / "token-ed25519.pem"),
        "signing_key_file": str(_SECURITY_DIR / "bus-signing-ed25519.pem"),
        "agency_keys_dir": str(_SECURITY_DIR / "agencies"),
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def broker_cleanup(namespace: str) -> AsyncIterator[list[str]]:
    """Deletes every queue and exchange of the test's namespace afterwards; yields the
    list to which a test may add further connector ids it declared.

    Every registered connector's queue is deleted, not only the one a test uses: each leaked
    quorum queue is a Raft group the broker keeps running, and a few hundred of them slow a
    small broker until it stops answering new connections.
    """
    from bus.registry import ConnectorRegistry

    connector_ids: list[str] = list(ConnectorRegistry.discover().ids)
    yield connector_ids
    connection = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 30)
    try:
        from bus.topology import delete_topology

        channel = await connection.channel()
        await delete_topology(
            channel,
            Names(namespace),
            connector_ids=sorted(set(connector_ids)),
            retry_delays=CLEANED_RETRY_DELAYS,
        )
    finally:
        await connection.close()
