"""Dead letters kept in the store, for operators to list, inspect, replay or discard.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bus.store.schema import BigId, Json, UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column(
            "fingerprint",
            sa.String(64),
            nullable=False,
            comment="SHA-256 of the message id and the headers of this parking",
        ),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("dossier_code", sa.String(40), nullable=True),
        sa.Column("connector", sa.String(64), nullable=True),
        sa.Column("procedure_code", sa.String(40), nullable=True),
        sa.Column("event_type", sa.String(120), nullable=True),
        sa.Column(
            "queue", sa.String(255), nullable=True, comment="Where it failed: a replay's target"
        ),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("error_class", sa.String(16), nullable=False, comment="transient or permanent"),
        sa.Column("fault_code", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("replays", sa.Integer(), nullable=False, comment="Replays before this parking"),
        sa.Column("parked_at", UtcDateTime(), nullable=False),
        sa.Column("content_type", sa.String(120), nullable=True),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("headers", Json, nullable=False, comment="The AMQP headers as parked"),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False, comment="parked, replayed or discarded"),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True, comment="Client id of the operator"),
        sa.Column("resolution_note", sa.Text(), nullable=True, comment="Why it was discarded"),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.UniqueConstraint("fingerprint", name="uq_dead_letters_fingerprint"),
    )
    op.create_index("ix_dead_letters_message_id", "dead_letters", ["message_id"])
    op.create_index("ix_dead_letters_dossier_code", "dead_letters", ["dossier_code"])
    op.create_index("ix_dead_letters_state_parked_at", "dead_letters", ["state", "parked_at"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_state_parked_at", table_name="dead_letters")
    op.drop_index("ix_dead_letters_dossier_code", table_name="dead_letters")
    op.drop_index("ix_dead_letters_message_id", table_name="dead_letters")
    op.drop_table("dead_letters")
