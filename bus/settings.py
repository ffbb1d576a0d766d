"""Configuration: every knob is an environment variable with the ``BUS_`` prefix.

The embedded defaults run on one laptop (SQLite file, local RabbitMQ); production changes only
these variables (PostgreSQL, a RabbitMQ cluster). The README's configuration table is generated
from this class, so the descriptions here are the documentation.
"""

from __future__ import annotations

import json
import re
from datetime import date
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.security.agency_keys import DEFAULT_AGENCY_KEYS_DIR


class Settings(BaseSettings):
    """All runtime settings of the bus."""

    model_config = SettingsConfigDict(env_prefix="BUS_", extra="ignore", frozen=True)

    # --- where things live -----------------------------------------------------------------
    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="RabbitMQ URL (`amqp://` or `amqps://`). A cluster: one URL per node, "
        "separated by commas; a process connects to the first node that answers and, when it "
        "loses that node, goes on to the next. The quorum queues replicate across the nodes.",
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///var/bus.sqlite3",
        description="SQLAlchemy async URL of the store: SQLite file by default, "
        "`postgresql+asyncpg://user@host/db` in production.",
    )

    # --- broker ------------------------------------------------------------------------------
    namespace: str = Field(
        default="bus",
        pattern=r"^[a-z][a-z0-9_-]{0,30}$",
        description="Prefix of every exchange and queue name, so several buses (or test runs) "
        "can share one broker.",
    )
    prefetch: int = Field(
        default=128, ge=1, le=10_000, description="Unacknowledged messages per consumer."
    )
    delivery_limit: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Quorum-queue `x-delivery-limit`: redeliveries (e.g. a worker crashing on "
        "the message) before the broker dead-letters it to the parking queue.",
    )
    retry_delays: tuple[float, ...] = Field(
        default=(1.0, 5.0, 30.0, 120.0),
        description="Back-off tiers in seconds for transient failures; one TTL queue per tier. "
        "A message that failed after the last tier is parked.",
    )
    publish_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a publisher confirm."
    )

    # --- store and outbox --------------------------------------------------------------------
    batch_max: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Most items written in one database transaction (group commit).",
    )
    outbox_poll_interval: float = Field(
        default=0.2, gt=0, description="Seconds between outbox scans when nothing woke the relay."
    )
    outbox_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a relay owns the rows it claimed or was handed; rows of a relay "
        "that died are published by another after this.",
    )
    outbox_retention_seconds: float = Field(
        default=7 * 86_400.0,
        ge=0,
        description="Sent outbox rows (shown as a dossier's events) are purged after this.",
    )

    # --- HTTP API ------------------------------------------------------------------------------
    api_host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port the API listens on.")
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted (bytes)."
    )
    ingest_max_pending: int = Field(
        default=5000,
        ge=1,
        description="Dossiers that may wait for the store's next commit in one API process; "
        "past it a submission is answered 503 with Retry-After instead of queuing.",
    )
    max_json_depth: int = Field(
        default=32, ge=2, le=512, description="Deepest JSON nesting accepted in a request."
    )

    # --- who may call: clients, tokens, certificates ------------------------------------------
    clients_file: str = Field(
        default="var/clients.yaml",
        description="The client directory (YAML: each agency client, its rights, hashes of its "
        "secrets and certificates). Without it every request but health is refused; "
        "`bus clients add` creates it.",
    )
    token_key_file: str = Field(
        default="var/keys/token-ed25519.pem",
        description="Ed25519 key that signs access tokens; created if absent. Give every API "
        "process the same file.",
    )
    token_ttl_seconds: int = Field(
        default=600, ge=30, le=3600, description="Lifetime of an access token (seconds)."
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses or networks of the TLS-terminating proxies whose forwarded "
        "client certificate is believed (JSON list); empty: none is.",
    )
    client_rate_limit: str = Field(
        default="200/second;6000/minute",
        description="Requests each client may make (a client's own `rate_limit` in the directory "
        "wins); past it, 429 with Retry-After.",
    )
    auth_failure_rate_limit: str = Field(
        default="30/minute",
        description="Failed authentications an address may make before it is answered 429.",
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="Where rate limits are counted: `memory://` (per API process) or "
        "`redis://host:6379` (once for the cluster).",
    )
    signing_key_file: str = Field(
        default="var/keys/bus-signing-ed25519.pem",
        description="Ed25519 key the bus signs its replies to signed requests with; created if "
        "absent. Its public half is served at GET /v1/keys.",
    )
    signing_key_id: str = Field(
        default="lienthong-bus",
        max_length=64,
        description="The key id (keyid) of the bus's signatures.",
    )
    signature_max_age_seconds: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="How old a signed request may be (its `created`); older ones, and repeated "
        "nonces within this time, are refused.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="Log lines as JSON objects (for a log pipeline) or text (for a terminal); "
        "both carry the dossier, message id, correlation id and trace id of what is logged.",
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port on which each `bus worker` serves its Prometheus metrics (/metrics); "
        "0: none. Give each worker process its own port.",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the workers' metrics listen on: keep it private to the monitoring "
        "network (the workers' metrics need no client credentials).",
    )
    agency_keys_dir: str = Field(
        default=DEFAULT_AGENCY_KEYS_DIR,
        description="The agencies' Ed25519 signing keys, one PEM file per agency code, used by "
        "connectors with [signing]; `bus keys new AGENCY` makes one. Public halves are served "
        "at GET /v1/keys.",
    )
    client_cert_header: str = Field(
        default="X-Client-Cert",
        description="Header in which a trusted proxy forwards the verified client certificate "
        "(URL-encoded PEM, nginx's $ssl_client_escaped_cert).",
    )

    # --- events for consumers: webhooks and Server-Sent Events -------------------------------
    webhook_max_attempts: int = Field(
        default=5,
        ge=1,
        le=50,
        description="POSTs of one event to one webhook subscription before it counts as a failed "
        "event; retries wait in the `BUS_RETRY_DELAYS` tiers (the last tier repeats).",
    )
    webhook_disable_after: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Consecutive failed events after which a webhook subscription is disabled.",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a webhook receiver has to answer one POST."
    )
    webhook_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often the webhook dispatcher reloads subscriptions: a new one gets "
        "events within this time; a deleted or disabled one gets none after the change.",
    )
    webhook_log_retention_seconds: float = Field(
        default=7 * 86_400.0,
        ge=0,
        description="Webhook delivery attempts (shown per subscription) are purged after this.",
    )
    sse_heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between heartbeat comments on an idle Server-Sent Events stream.",
    )

    # --- working days and due dates (bus/calendar.py) ----------------------------------------
    extra_days_off: tuple[date, ...] = Field(
        default=(),
        description="Days off the `holidays` package does not know, as a JSON list of ISO "
        'dates, e.g. `["2026-01-02"]`: a working day the government swapped for a Saturday in '
        "its yearly holiday schedule. Due dates skip them.",
    )
    makeup_working_days: tuple[date, ...] = Field(
        default=(),
        description="Working days the `holidays` package does not know, as a JSON list of ISO "
        'dates, e.g. `["2026-01-10"]`: the make-up Saturday of a swapped day, or a holiday the '
        "package lists that agencies work after all. Due dates count them.",
    )

    # --- deadline alerts (bus/deadlines.py) ---------------------------------------------------
    deadline_scan_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds between two looks of the deadline scheduler (in each worker) for "
        "dossiers and linkage steps at risk or overdue; each alert is raised once whatever the "
        "number of workers.",
    )
    at_risk_grace_seconds: float = Field(
        default=900.0,
        ge=0,
        description="A dossier or step still open on its due date is `at_risk` only once it has "
        "been open this long (since it was received or requested), so one asked a moment ago "
        "and about to be answered is not flagged.",
    )

    # --- linkage bundles (bus/linkage/) -------------------------------------------------------
    linkage_bundles: tuple[str, ...] | None = Field(
        default=None,
        description="Ids of the linkage bundles (contracts/linkage_bundles/) that start for new "
        'dossiers, as a JSON list, e.g. `["birth"]`; unset: all of them, `[]`: none. A '
        "procedure whose bundle is off goes to the connector that lists it in `procedures` "
        "(its registration alone); runs already under way finish either way.",
    )

    # --- connectors ----------------------------------------------------------------------------
    connectors: tuple[str, ...] = Field(
        default=(),
        description="Connector ids a worker serves; empty means every registered connector.",
    )
    connector_endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Per-connector endpoint overrides as JSON, e.g. "
        '`{"civil_status": "http://10.0.0.5:8080"}`.',
    )

    @field_validator("amqp_url")
    @classmethod
    def _check_broker_addresses(cls, value: str) -> str:
        broker_addresses(value)  # raises a ValueError naming the bad item
        return value

    def as_environment(self) -> dict[str, str]:
        """These settings as ``BUS_*`` variables, to hand to a child process."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(mode="json").items():
            env[f"BUS_{name.upper()}"] = (
                value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            )
        return env

    @property
    def is_sqlite(self) -> bool:
        """Whether the store is an embedded SQLite file."""
        return self.database_url.startswith("sqlite")


#: A comma that starts another URL (``,amqp://…``): a comma inside a password does not.
_NEXT_URL = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def broker_addresses(amqp_url: str) -> tuple[str, ...]:
    """The node URLs of ``BUS_AMQP_URL``: one, or several separated by commas (a cluster).

    Raises ValueError, naming the item (its password hidden), when one is not an ``amqp://``
    or ``amqps://`` URL with a host.
    """
    items = tuple(item.strip() for item in _NEXT_URL.split(amqp_url.strip()))
    for number, item in enumerate(items, start=1):
        parts = urlsplit(item)
        host = parts.netloc.rsplit("@", 1)[-1]
        try:
            valid = parts.scheme.lower() in ("amqp", "amqps") and bool(parts.hostname)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError:
            valid = False
        # A comma left in a host or vhost is a node given without its own amqp:// prefix.
        if not valid or "," in host or "," in parts.path:
            which = f"item {number} of the list" if len(items) > 1 else "it"
            raise ValueError(
                f"BUS_AMQP_URL must be amqp:// or amqps:// URLs with a host, one per RabbitMQ "
                f"node, separated by commas; {which} is {redact_url(item)!r}"
            )
    return items


def redact_url(url: str) -> str:
    """``url`` (or a comma-separated list of URLs) with each password replaced by ``***``,
    for messages and logs."""
    if _NEXT_URL.search(url):
        return ",".join(redact_url(item) for item in _NEXT_URL.split(url))
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
