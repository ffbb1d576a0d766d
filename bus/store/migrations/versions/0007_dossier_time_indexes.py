"""Indexes for the 766 report and the deadline scheduler: dossiers by receipt and open by due date.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The 766 report reads dossiers received in a period (bus/store/stats.py).
    op.create_index("ix_dossiers_received_at", "dossiers", ["received_at"])
    # Open dossiers past a due date (the scheduler, the report's "overdue now"): one range per
    # open status, so finished dossiers, the bulk of the table, are never read.
    op.create_index("ix_dossiers_status_due_at", "dossiers", ["status", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_dossiers_status_due_at", table_name="dossiers")
    op.drop_index("ix_dossiers_received_at", table_name="dossiers")
