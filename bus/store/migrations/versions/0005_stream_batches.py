"""Commit-ordered stream positions: outbox.stream_batch and the one-row outbox_batches counter.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "outbox",
        sa.Column(
            "stream_batch",
            sa.BigInteger(),
            nullable=True,
            comment="Number of the relay batch that marked it sent, in commit order; "
            "event streams read (stream_batch, id) in order (bus/store/replay.py)",
        ),
    )
    op.create_index("ix_outbox_stream_batch_id", "outbox", ["stream_batch", "id"])
    # Marking a row sent looks at the earlier rows of its dossier (bus/store/outbox.py).
    op.create_index("ix_outbox_dossier_code_id", "outbox", ["dossier_code", "id"])
    batches = op.create_table(
        "outbox_batches",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("last_batch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_batches"),
    )
    op.bulk_insert(batches, [{"id": 1, "last_batch": 0}])
    # Events sent before this revision stay resumable, in their old (id) order, before batch 1.
    op.execute("UPDATE outbox SET stream_batch = 0 WHERE sent_at IS NOT NULL")


def downgrade() -> None:
    op.drop_table("outbox_batches")
    op.drop_index("ix_outbox_dossier_code_id", table_name="outbox")
    op.drop_index("ix_outbox_stream_batch_id", table_name="outbox")
    op.drop_column("outbox", "stream_batch")
