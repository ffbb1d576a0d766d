"""Each hop keeps the signatures of its signed exchanges with the partner.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bus.store.schema import Json

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a commented column in place.
    with op.batch_alter_table("hops") as batch:
        batch.add_column(
            sa.Column(
                "signatures",
                Json,
                nullable=True,
                comment="The signed exchanges of the hop: each request's and answer's signature "
                "fields",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("hops") as batch:
        batch.drop_column("signatures")
