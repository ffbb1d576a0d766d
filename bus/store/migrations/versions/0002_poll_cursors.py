"""Poll cursors: where each polling connector resumes reading its partner's list.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bus.store.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "poll_cursors",
        sa.Column("connector_id", sa.String(64), nullable=False),
        sa.Column(
            "cursor",
            sa.Text(),
            nullable=True,
            comment="The partner's paging position in the window",
        ),
        sa.Column(
            "watermark",
            UtcDateTime(),
            nullable=False,
            comment="Start of the window being read: all before it is applied and acknowledged",
        ),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connector_id", name="pk_poll_cursors"),
    )


def downgrade() -> None:
    op.drop_table("poll_cursors")
