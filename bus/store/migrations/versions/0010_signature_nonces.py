"""The nonces of signed requests, so that a replayed request is refused.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bus.store.schema import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signature_nonces",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column(
            "signed_at", UtcDateTime(), nullable=False, comment="The signature's created time"
        ),
        sa.PrimaryKeyConstraint("client_id", "nonce", name="pk_signature_nonces"),
    )
    op.create_index("ix_signature_nonces_signed_at", "signature_nonces", ["signed_at"])


def downgrade() -> None:
    op.drop_index("ix_signature_nonces_signed_at", table_name="signature_nonces")
    op.drop_table("signature_nonces")
