"""Each webhook subscription belongs to the client that registered it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a commented column with an index in place.
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(
            sa.Column(
                "owner",
                sa.String(64),
                nullable=True,
                comment="Client id that registered it; none for those older than client identities",
            )
        )
        batch.create_index("ix_subscriptions_owner", ["owner"])


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_index("ix_subscriptions_owner")
        batch.drop_column("owner")
