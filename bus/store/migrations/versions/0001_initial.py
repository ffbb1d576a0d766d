"""Initial store: dossiers, transaction log (hops), outbox, processed message ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bus.store.schema import BigId, Json, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dossiers",
        sa.Column("code", sa.String(40), nullable=False, comment="Mã hồ sơ"),
        sa.Column("procedure_code", sa.String(40), nullable=False),
        sa.Column("receiving_agency", sa.String(16), nullable=False),
        sa.Column("handling_agency", sa.String(16), nullable=False),
        sa.Column("commune_code", sa.String(8), nullable=True, comment="Applicant's commune"),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column(
            "sequence",
            sa.Integer(),
            nullable=False,
            comment="Last per-dossier event sequence applied",
        ),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("partner_reference", sa.String(100), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("accepted_event_id", sa.String(64), nullable=False),
        sa.Column("document", Json, nullable=False, comment="The canonical dossier as accepted"),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_dossiers"),
        sa.UniqueConstraint("idempotency_key", name="uq_dossiers_idempotency_key"),
    )
    op.create_index("ix_dossiers_procedure_code", "dossiers", ["procedure_code"])
    op.create_index("ix_dossiers_receiving_agency", "dossiers", ["receiving_agency"])

    op.create_table(
        "hops",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("dossier_code", sa.String(40), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False, comment="ingest, publish, deliver, ..."),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=True),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("done_at", UtcDateTime(), nullable=False),
        sa.Column("request_bytes", sa.Integer(), nullable=False),
        sa.Column("response_bytes", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("fault_code", sa.String(64), nullable=True),
        sa.Column("fault_detail", sa.Text(), nullable=True),
        sa.Column("mapping_version", sa.String(64), nullable=True),
        sa.Column("attempt", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hops"),
    )
    op.create_index("ix_hops_message_id", "hops", ["message_id"])
    op.create_index("ix_hops_dossier_code", "hops", ["dossier_code"])

    op.create_table(
        "outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("dossier_code", sa.String(40), nullable=False),
        sa.Column("exchange", sa.String(120), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("mandatory", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["id"],
        sqlite_where=sa.text("sent_at IS NULL"),
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"])

    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name="pk_processed_messages"),
    )


def downgrade() -> None:
    op.drop_table("processed_messages")
    op.drop_index("ix_outbox_sent_at", table_name="outbox")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_hops_dossier_code", table_name="hops")
    op.drop_index("ix_hops_message_id", table_name="hops")
    op.drop_table("hops")
    op.drop_index("ix_dossiers_receiving_agency", table_name="dossiers")
    op.drop_index("ix_dossiers_procedure_code", table_name="dossiers")
    op.drop_table("dossiers")
