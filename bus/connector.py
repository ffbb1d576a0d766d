"""The connector SDK: what an adapter to a partner system implements, and what it is handed.

A connector is an object with one coroutine, :meth:`Connector.deliver`: given one canonical
message, make the partner system act on it and say what the partner answered. Everything around
that call (queues, retries, dedup, the transaction log, status events) is the bus's job, so a
connector never touches the store or the broker.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from contracts import AgencyCode, Dossier, DossierStatus, EventEnvelope, ProcedureCode


class ConnectorConfig(BaseModel):
    """One connector's configuration, read from its ``connector.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        pattern=r"^[a-z][a-z0-9_]{1,40}$", description="Connector id, e.g. civil_status."
    )
    agency: AgencyCode = Field(description="Agency code of the partner system behind it.")
    title: str = Field(description="Human name of the partner system.")
    endpoint: HttpUrl = Field(description="Base URL of the partner system.")
    procedures: tuple[ProcedureCode, ...] = Field(
        min_length=1, description="Procedures whose dossiers this connector receives."
    )
    mapping: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]*/[0-9][0-9a-z.\-]*$",
        description="The mappings this connector speaks: partner/version under mappings/.",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    concurrency: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="Calls to the partner in flight at once: what the partner system can take.",
    )

    @classmethod
    def from_file(cls, path: Path, *, endpoint: str | None = None) -> ConnectorConfig:
        """Read a ``connector.toml``; ``endpoint`` overrides the file's (for tests and demos)."""
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        if endpoint is not None:
            data["endpoint"] = endpoint
        return cls.model_validate(data)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One canonical message handed to a connector for its partner."""

    message_id: str
    event: EventEnvelope
    dossier: Dossier
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What the partner answered to a delivery that it accepted."""

    status: DossierStatus
    sent_at: datetime
    answered_at: datetime
    partner_reference: str | None = None
    note: str | None = None
    request_size: int = 0
    response_size: int = 0
    mapping_version: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Connector(Protocol):
    """An adapter to one partner system.

    ``deliver`` raises :class:`bus.errors.TransientError` when the partner may accept later and
    :class:`bus.errors.PermanentError` when it never will; any other exception is a bug in the
    connector and is treated as transient, so it is retried and then parked, never lost.
    Partners that support it should be called idempotently (the delivery's ``message_id`` and the
    dossier code are stable across redeliveries).
    """

    config: ConnectorConfig

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Make the partner act on one delivery and report its answer."""
        ...

    async def aclose(self) -> None:
        """Release network resources."""
        ...


class ConnectorFactory(Protocol):
    """What a connector entry point resolves to: usually the connector class itself."""

    default_config: Path

    def __call__(self, config: ConnectorConfig) -> Connector: ...
