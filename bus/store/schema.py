"""The store's tables, declared once with SQLAlchemy Core; Alembic migrations create them.

Hot paths use Core statements on these tables (bulk inserts, one transaction per batch) rather
than the ORM's unit of work, which would cost an object per row at thousands of rows a second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes stored as UTC: SQLite has no time-zone type, so normalise on the way in."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store only accepts aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a 64-bit identity.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json: Any = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

dossiers = sa.Table(
    "dossiers",
    metadata,
    sa.Column("code", sa.String(40), primary_key=True, comment="Mã hồ sơ"),
    sa.Column("procedure_code", sa.String(40), nullable=False, index=True),
    sa.Column("receiving_agency", sa.String(16), nullable=False, index=True),
    sa.Column("handling_agency", sa.String(16), nullable=False),
    sa.Column("commune_code", sa.String(8), nullable=True, comment="Applicant's commune"),
    sa.Column("channel", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column(
        "sequence", sa.Integer, nullable=False, comment="Last per-dossier event sequence applied"
    ),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=True),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("partner_reference", sa.String(100), nullable=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("accepted_event_id", sa.String(64), nullable=False),
    sa.Column("document", Json, nullable=False, comment="The canonical dossier as accepted"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# The 766 report reads dossiers received in a period (bus/store/stats.py).
sa.Index("ix_dossiers_received_at", dossiers.c.received_at)
# Open dossiers past a due date, for the deadline scheduler and the report's "overdue now": one
# range per open status, so finished dossiers, the bulk of the table, are never read.
sa.Index("ix_dossiers_status_due_at", dossiers.c.status, dossiers.c.due_at)

hops = sa.Table(
    "hops",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(64), nullable=False, index=True),
    sa.Column("dossier_code", sa.String(40), nullable=False, index=True),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False, comment="ingest, publish, deliver, ..."),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("recipient", sa.String(64), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=True),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("answered_at", UtcDateTime, nullable=True),
    sa.Column("done_at", UtcDateTime, nullable=False),
    sa.Column("request_bytes", sa.Integer, nullable=False, default=0),
    sa.Column("response_bytes", sa.Integer, nullable=False, default=0),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("fault_code", sa.String(64), nullable=True),
    sa.Column("fault_detail", sa.Text, nullable=True),
    sa.Column("mapping_version", sa.String(64), nullable=True),
    sa.Column("attempt", sa.SmallInteger, nullable=False, default=1),
    sa.Column(
        "signatures",
        Json,
        nullable=True,
        comment="The signed exchanges of the hop: each request's and answer's signature fields",
    ),
)
# Connector health (bus/store/connector_health.py): one connector's recent deliveries, and its
# newest success, as a range of this index rather than a scan of the whole log.
sa.Index("ix_hops_recipient_kind_done_at", hops.c.recipient, hops.c.kind, hops.c.done_at)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("dossier_code", sa.String(40), nullable=False),
    sa.Column("exchange", sa.String(120), nullable=False),
    sa.Column("routing_key", sa.String(255), nullable=False),
    sa.Column("mandatory", sa.Boolean, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("claimed_until", UtcDateTime, nullable=True),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column(
        "stream_batch",
        sa.BigInteger,
        nullable=True,
        comment="Number of the relay batch that marked it sent, in commit order; "
        "event streams read (stream_batch, id) in order (bus/store/replay.py)",
    ),
)
sa.Index(
    "ix_outbox_pending",
    outbox.c.id,
    sqlite_where=outbox.c.sent_at.is_(None),
    postgresql_where=outbox.c.sent_at.is_(None),
)
sa.Index("ix_outbox_sent_at", outbox.c.sent_at)
sa.Index("ix_outbox_stream_batch_id", outbox.c.stream_batch, outbox.c.id)
# Marking a row sent looks at the earlier rows of its dossier (bus/store/outbox.py).
sa.Index("ix_outbox_dossier_code_id", outbox.c.dossier_code, outbox.c.id)

# One row: the last stream_batch handed out. Updating it locks the row until the relay's
# transaction commits, so batch numbers become visible in the order they were given.
outbox_batches = sa.Table(
    "outbox_batches",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("last_batch", sa.BigInteger, nullable=False),
)

processed_messages = sa.Table(
    "processed_messages",
    metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("message_id", sa.String(64), primary_key=True),
    sa.Column("processed_at", UtcDateTime, nullable=False),
)

# Consumers of status events (portals, the national portal's sync) must never be told an older
# status after a newer one: this is the last dossier sequence each one was handed.
consumer_positions = sa.Table(
    "consumer_positions",
    metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("dossier_code", sa.String(40), primary_key=True),
    sa.Column(
        "sequence", sa.Integer, nullable=False, comment="Last dossier sequence delivered to it"
    ),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

poll_cursors = sa.Table(
    "poll_cursors",
    metadata,
    sa.Column("connector_id", sa.String(64), primary_key=True),
    sa.Column(
        "cursor", sa.Text, nullable=True, comment="The partner's paging position in the window"
    ),
    sa.Column(
        "watermark",
        UtcDateTime,
        nullable=False,
        comment="Start of the window being read: all before it is applied and acknowledged",
    ),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("url", sa.String(2000), nullable=False, comment="Where events are POSTed"),
    sa.Column("routing_keys", Json, nullable=False, comment="AMQP topic patterns"),
    sa.Column("description", sa.String(500), nullable=True),
    # Kept readable, not hashed: the bus signs every delivery with it (HMAC needs the key).
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, comment="Failed events in a row"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_delivered_at", UtcDateTime, nullable=True),
    sa.Column("disabled_at", UtcDateTime, nullable=True),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column(
        "owner",
        sa.String(64),
        nullable=True,
        index=True,
        comment="Client id that registered it; none for those older than client identities",
    ),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.String(36), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False, index=True),
    sa.Column("routing_key", sa.String(255), nullable=False),
    sa.Column("attempt", sa.SmallInteger, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False, comment="delivered, retry, failed"),
    sa.Column("status_code", sa.SmallInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("attempted_at", UtcDateTime, nullable=False, index=True),
)
sa.Index(
    "ix_webhook_deliveries_subscription",
    webhook_deliveries.c.subscription_id,
    webhook_deliveries.c.id,
)

# Every status a dossier took, in order: the evidence the 766 statistics are computed from
# (time waiting for a supplement, how many supplements were asked, when it finished).
status_history = sa.Table(
    "status_history",
    metadata,
    sa.Column("dossier_code", sa.String(40), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True, comment="The dossier's event sequence"),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("changed_at", UtcDateTime, nullable=False, comment="When the agency changed it"),
    sa.Column("recorded_at", UtcDateTime, nullable=False, comment="When the bus committed it"),
)
sa.Index("ix_status_history_changed_at", status_history.c.changed_at)

# The linkage engine's saga state: one run per dossier of a bundle procedure, one row per step.
# Written in the same transaction as the answer that moved it (bus/linkage/engine.py), so a
# worker that crashes mid-way leaves either the whole move or nothing.
linkage_runs = sa.Table(
    "linkage_runs",
    metadata,
    sa.Column("dossier_code", sa.String(40), primary_key=True),
    sa.Column("bundle_id", sa.String(40), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, comment="open, done or stopped"),
    sa.Column("dossier_status", sa.SmallInteger, nullable=False),
    sa.Column("stopped_reason", sa.Text, nullable=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("due_on", sa.Date, nullable=False, comment="The whole bundle's due date"),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
sa.Index("ix_linkage_runs_state", linkage_runs.c.state)

linkage_steps = sa.Table(
    "linkage_steps",
    metadata,
    sa.Column("dossier_code", sa.String(40), primary_key=True),
    sa.Column("step_id", sa.String(40), primary_key=True),
    sa.Column("connector", sa.String(64), nullable=False),
    sa.Column(
        "state", sa.String(16), nullable=False, comment="waiting, requested, supplement, ..."
    ),
    sa.Column("requested_at", UtcDateTime, nullable=True),
    sa.Column("due_on", sa.Date, nullable=True),
    sa.Column("request_event_id", sa.String(64), nullable=True),
    sa.Column("result_status", sa.SmallInteger, nullable=True),
    sa.Column("result_agency", sa.String(16), nullable=True),
    sa.Column("result_changed_at", UtcDateTime, nullable=True),
    sa.Column("result_note", sa.Text, nullable=True),
    sa.Column("result_reference", sa.String(100), nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
sa.Index("ix_linkage_steps_state_due_on", linkage_steps.c.state, linkage_steps.c.due_on)

# Alerts raised: the key makes each (dossier, what, kind) alert happen once, whichever
# scheduler replica saw it first.
deadline_alerts = sa.Table(
    "deadline_alerts",
    metadata,
    sa.Column("dossier_code", sa.String(40), primary_key=True),
    sa.Column("scope", sa.String(48), primary_key=True, comment="'dossier' or 'step:<id>'"),
    sa.Column("kind", sa.String(16), primary_key=True, comment="at_risk or overdue"),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("raised_at", UtcDateTime, nullable=False),
)
sa.Index("ix_deadline_alerts_raised_at", deadline_alerts.c.raised_at)

# The tamper-evident audit log (bus/audit/, bus/store/audit.py): one record per hop and per
# event, each hash-chained to the one before. Append-only: migration 0008 adds triggers that
# refuse UPDATE and DELETE.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("seq", sa.BigInteger, nullable=False, unique=True, comment="Place in the chain"),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, comment="hop or event"),
    sa.Column("dossier_code", sa.String(40), nullable=True, index=True),
    sa.Column("subject", sa.String(64), nullable=False, comment="Message or event id"),
    sa.Column("payload", Json, nullable=False, comment="The hop row or the event, as recorded"),
    sa.Column("digest", sa.String(64), nullable=False, comment="SHA-256 of the content"),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, comment="SHA-256 of seq, prev_hash, digest"),
)

# One row: the chain's last seq and hash. An appending transaction locks it as its last step
# (read FOR UPDATE, then written) and holds the lock until it commits, so seqs are given out in
# commit order across processes: the same trick as outbox_batches.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
)

# The nonces of signed requests, kept as long as a signature may be presented (its maximum age):
# a second request with the same client and nonce is a replay (bus/store/nonces.py).
signature_nonces = sa.Table(
    "signature_nonces",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("nonce", sa.String(128), primary_key=True),
    sa.Column("signed_at", UtcDateTime, nullable=False, comment="The signature's created time"),
)
sa.Index("ix_signature_nonces_signed_at", signature_nonces.c.signed_at)

# Dead letters: each message that reached the parking queue, kept until an operator replays or
# discards it (bus/dead_letters.py). One row per parking: a message parked again after a replay
# is a new row, and ``fingerprint`` makes a redelivered copy of the same parking harmless.
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "fingerprint",
        sa.String(64),
        nullable=False,
        unique=True,
        comment="SHA-256 of the message id and the headers of this parking",
    ),
    sa.Column("message_id", sa.String(64), nullable=False, index=True),
    sa.Column("dossier_code", sa.String(40), nullable=True, index=True),
    sa.Column("connector", sa.String(64), nullable=True),
    sa.Column("procedure_code", sa.String(40), nullable=True),
    sa.Column("event_type", sa.String(120), nullable=True),
    sa.Column("queue", sa.String(255), nullable=True, comment="Where it failed: a replay's target"),
    sa.Column("routing_key", sa.String(255), nullable=False),
    sa.Column("error_class", sa.String(16), nullable=False, comment="transient or permanent"),
    sa.Column("fault_code", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("replays", sa.Integer, nullable=False, comment="Replays before this parking"),
    sa.Column("parked_at", UtcDateTime, nullable=False),
    sa.Column("content_type", sa.String(120), nullable=True),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("headers", Json, nullable=False, comment="The AMQP headers as parked"),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.String(12), nullable=False, comment="parked, replayed or discarded"),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("resolved_by", sa.String(64), nullable=True, comment="Client id of the operator"),
    sa.Column("resolution_note", sa.Text, nullable=True, comment="Why it was discarded"),
)
# The list operators read: what is still parked, newest first, by connector or fault.
sa.Index("ix_dead_letters_state_parked_at", dead_letters.c.state, dead_letters.c.parked_at)
