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
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from bus.errors import InvalidMessage
from bus.inbound.settings import InboundMessages
from bus.security.signing import public_key_from_text
from contracts import (
    AgencyCode,
    Dossier,
    DossierStatus,
    EventEnvelope,
    ProcedureCode,
    StatusChange,
    StepOrder,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoAuth(_Section):
    """The partner needs no credentials (a closed network, or mutual TLS at the proxy)."""

    type: Literal["none"] = "none"


class BearerAuth(_Section):
    """A static bearer token, read from an environment variable (never from the file)."""

    type: Literal["bearer"]
    token_env: str = Field(description="Environment variable holding the token")


class BasicAuth(_Section):
    """HTTP basic authentication."""

    type: Literal["basic"]
    username: str
    password_env: str = Field(description="Environment variable holding the password")


class SessionAuth(_Section):
    """Log in once, reuse the session, log in again when it expires (the DVCQG style)."""

    type: Literal["session"]
    login_path: str = Field(description="Path of the login call, e.g. /api/client/login")
    username: str
    password_env: str = Field(description="Environment variable holding the password")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra login headers, e.g. {dstcode = 'H12'}"
    )
    ttl_seconds: float = Field(default=1800, gt=0, description="Log in again after this")


class WsseAuth(_Section):
    """WS-Security UsernameToken in the SOAP header."""

    type: Literal["wsse"]
    username: str
    password_env: str = Field(description="Environment variable holding the password")


Auth = Annotated[
    NoAuth | BearerAuth | BasicAuth | SessionAuth | WsseAuth, Field(discriminator="type")
]


class RetryPolicy(_Section):
    """How this connector's transient failures are retried.

    Each delay must be one of the bus's retry tiers (``BUS_RETRY_DELAYS``), which are the queues
    that hold a message while it waits; the number of delays is the number of retries.
    """

    delays: tuple[float, ...] | None = Field(
        default=None, description="Seconds before each retry; default: every bus tier"
    )
    keep_order: bool = Field(
        default=False,
        description="Retry a failed message where it stands, holding back the later messages "
        "of its dossier, so a partner that records every step (a progress log) hears every "
        "step, in order. Without it a retried status event can be overtaken by a newer one, "
        "and is then skipped as superseded.",
    )


class CircuitPolicy(_Section):
    """When to stop calling a partner that keeps failing, and when to try it again."""

    failure_threshold: int = Field(
        default=5, ge=1, description="Consecutive transient failures that open the circuit"
    )
    open_seconds: float = Field(
        default=30.0, gt=0, description="How long to stop calling before one probe call"
    )


class XRoadIdentity(_Section):
    """Identities carried as X-Road headers when the partner sits on a national exchange."""

    client: str = Field(description="The calling member/subsystem, e.g. VN/GOV/000.00.00.H12/LGSP")
    service: str = Field(description="The called service, e.g. VN/GOV/000.00.00.G12/HOTICH/dangKy")
    protocol_version: str = "4.0"
    user_id: str | None = Field(default=None, description="The officer or system on whose behalf")


class SigningPolicy(_Section):
    """Signed calls (RFC 9421, Ed25519): the bus signs each request for ``agency`` and, with
    ``partner_key``, accepts only answers the partner signed for that very request."""

    agency: AgencyCode = Field(
        description="The agency the bus signs as; its key is <BUS_AGENCY_KEYS_DIR>/<agency>.pem "
        "(`bus keys new AGENCY`)"
    )
    partner_key: str | None = Field(
        default=None,
        description="The partner's Ed25519 public key (32 bytes, base64). Set: its answers must "
        "be signed with it and carry Request-Hash; unset: answers are not checked",
    )
    partner_key_id: str | None = Field(
        default=None,
        max_length=128,
        description="The keyid the partner signs with; default: the connector's agency code",
    )
    max_age_seconds: float = Field(
        default=300.0, gt=0, le=3600, description="Oldest signed answer accepted (seconds)"
    )

    @field_validator("partner_key")
    @classmethod
    def _readable_key(cls, value: str | None) -> str | None:
        if value is not None:
            public_key_from_text(value)
        return value


class SoapSettings(_Section):
    """A SOAP partner: its WSDL (kept under contracts/partners/) and what to call."""

    wsdl: str = Field(description="Path under contracts/partners/, e.g. civil_status/hotich.wsdl")
    operation: str = Field(description="Operation called for each delivery")
    service: str | None = Field(default=None, description="Service name when the WSDL has several")
    port: str | None = Field(default=None, description="Port name when the service has several")


class PollSettings(_Section):
    """A partner that cannot push: how the bus pulls from it."""

    interval_seconds: float = Field(default=30.0, gt=0, description="Pause between polls")
    window_days: float | None = Field(
        default=None, gt=0, description="Longest time window one query may ask for"
    )
    page_size: int = Field(default=100, ge=1, le=10_000)
    start: datetime | None = Field(
        default=None, description="Where the first poll starts (aware); default: now"
    )


class ConnectorConfig(BaseModel):
    """One connector's configuration, read from its ``connector.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        pattern=r"^[a-z][a-z0-9_]{1,40}$", description="Connector id, e.g. civil_status."
    )
    kind: Literal["rest", "soap", "poller", "custom"] = Field(
        default="custom", description="Which generic connector it builds on"
    )
    agency: AgencyCode = Field(description="Agency code of the partner system behind it.")
    title: str = Field(description="Human name of the partner system.")
    endpoint: HttpUrl = Field(description="Base URL of the partner system.")
    procedures: tuple[ProcedureCode, ...] = Field(
        default=(), description="Procedures whose submitted dossiers this connector receives."
    )
    subscribes: tuple[str, ...] = Field(
        default=(),
        description="Routing keys of other events it receives, e.g. 'dossier.status.#'",
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
    auth: Auth = Field(default_factory=NoAuth)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    circuit: CircuitPolicy = Field(default_factory=CircuitPolicy)
    xroad: XRoadIdentity | None = None
    signing: SigningPolicy | None = Field(
        default=None, description="Sign calls for an agency and check the partner's signatures"
    )
    soap: SoapSettings | None = None
    poll: PollSettings | None = None
    inbound: InboundMessages = Field(default=(), description="What its partner may push to it")

    @classmethod
    def from_file(cls, path: Path, *, endpoint: str | None = None) -> ConnectorConfig:
        """Read a ``connector.toml``; ``endpoint`` overrides the file's (for tests and demos)."""
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        if endpoint is not None:
            data["endpoint"] = endpoint
        return cls.model_validate(data)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One canonical message handed to a connector for its partner.

    A connector that serves procedures is handed submitted dossiers (``dossier``); one that
    subscribes to status events (a portal, the national portal's sync) is handed status changes
    (``change``). Exactly one of the two is set, matching ``event.type``.

    A connector that acts in a linkage bundle is handed its step (``step``) with the dossier:
    ``step.operation`` says what to do when its system does several things, ``step.due_on``
    when it is due, and the dossier's form already holds what earlier steps passed on
    (``step.passed``, e.g. the birth certificate number).
    """

    message_id: str
    event: EventEnvelope
    dossier: Dossier | None = None
    change: StatusChange | None = None
    attempt: int = 1
    step: StepOrder | None = None

    def __post_init__(self) -> None:
        if (self.dossier is None) == (self.change is None):
            raise ValueError("a delivery carries either a dossier or a status change")
        if self.step is not None and self.dossier is None:
            raise ValueError("a linkage step is delivered with its dossier")

    @property
    def operation(self) -> str | None:
        """What the step asks the connector to do; ``None``: its one (default) operation."""
        return None if self.step is None else self.step.operation

    def require_dossier(self) -> Dossier:
        """The submitted dossier; a status event here is a routing mistake, never retried."""
        if self.dossier is None:
            raise InvalidMessage(
                f"this connector receives submitted dossiers, not {self.event.type} events: "
                "check its `subscribes` routing keys"
            )
        return self.dossier

    def require_change(self) -> StatusChange:
        """The status change; a submitted dossier here is a routing mistake, never retried."""
        if self.change is None:
            raise InvalidMessage(
                f"this connector receives status changes, not {self.event.type} events: "
                "check its `procedures` and `subscribes`"
            )
        return self.change


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What the partner answered to a delivery that it accepted.

    ``status`` is the dossier's new status when the partner acted on it; ``None`` when the
    partner only took note (an event consumer's acknowledgement moves no dossier).
    ``changed_at`` is when the partner dated its decision, when its answer says: the same clock
    dates what it pushes or lists later, so the order of its answers about one dossier is judged
    on its own clock (``answered_at``, ours, stands in when the answer carries no time).
    """

    status: DossierStatus | None
    sent_at: datetime
    answered_at: datetime
    changed_at: datetime | None = None
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
