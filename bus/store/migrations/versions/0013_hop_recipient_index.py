"""An index for connector health: each connector's deliver hops in time order.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The dashboard reads each connector's last hour and its newest success
    # (bus/store/connector_health.py) as ranges of this index, not scans of the log.
    op.create_index("ix_hops_recipient_kind_done_at", "hops", ["recipient", "kind", "done_at"])


def downgrade() -> None:
    op.drop_index("ix_hops_recipient_kind_done_at", table_name="hops")
