"""Linkage runs and steps, deadline alerts, and the status history of every dossier.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bus.store.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    history = op.create_table(
        "status_history",
        sa.Column("dossier_code", sa.String(40), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False, comment="The dossier's event sequence"),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column(
            "changed_at", UtcDateTime(), nullable=False, comment="When the agency changed it"
        ),
        sa.Column(
            "recorded_at", UtcDateTime(), nullable=False, comment="When the bus committed it"
        ),
        sa.PrimaryKeyConstraint("dossier_code", "sequence", name="pk_status_history"),
    )
    op.create_index("ix_status_history_changed_at", "status_history", ["changed_at"])
    # Dossiers accepted before this revision start their history with their current status.
    op.execute(
        sa.insert(history).from_select(
            ["dossier_code", "sequence", "status", "changed_at", "recorded_at"],
            sa.select(
                sa.column("code"),
                sa.column("sequence"),
                sa.column("status"),
                sa.column("updated_at"),
                sa.column("updated_at"),
            ).select_from(sa.table("dossiers")),
        )
    )
    op.create_table(
        "linkage_runs",
        sa.Column("dossier_code", sa.String(40), nullable=False),
        sa.Column("bundle_id", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, comment="open, done or stopped"),
        sa.Column("dossier_status", sa.SmallInteger(), nullable=False),
        sa.Column("stopped_reason", sa.Text(), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False, comment="The whole bundle's due date"),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dossier_code", name="pk_linkage_runs"),
    )
    op.create_index("ix_linkage_runs_state", "linkage_runs", ["state"])
    op.create_table(
        "linkage_steps",
        sa.Column("dossier_code", sa.String(40), nullable=False),
        sa.Column("step_id", sa.String(40), nullable=False),
        sa.Column("connector", sa.String(64), nullable=False),
        sa.Column(
            "state", sa.String(16), nullable=False, comment="waiting, requested, supplement, ..."
        ),
        sa.Column("requested_at", UtcDateTime(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("request_event_id", sa.String(64), nullable=True),
        sa.Column("result_status", sa.SmallInteger(), nullable=True),
        sa.Column("result_agency", sa.String(16), nullable=True),
        sa.Column("result_changed_at", UtcDateTime(), nullable=True),
        sa.Column("result_note", sa.Text(), nullable=True),
        sa.Column("result_reference", sa.String(100), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dossier_code", "step_id", name="pk_linkage_steps"),
    )
    op.create_index("ix_linkage_steps_state_due_on", "linkage_steps", ["state", "due_on"])
    op.create_table(
        "deadline_alerts",
        sa.Column("dossier_code", sa.String(40), nullable=False),
        sa.Column("scope", sa.String(48), nullable=False, comment="'dossier' or 'step:<id>'"),
        sa.Column("kind", sa.String(16), nullable=False, comment="at_risk or overdue"),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("raised_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dossier_code", "scope", "kind", name="pk_deadline_alerts"),
    )
    op.create_index("ix_deadline_alerts_raised_at", "deadline_alerts", ["raised_at"])


def downgrade() -> None:
    op.drop_table("deadline_alerts")
    op.drop_table("linkage_steps")
    op.drop_table("linkage_runs")
    op.drop_table("status_history")
