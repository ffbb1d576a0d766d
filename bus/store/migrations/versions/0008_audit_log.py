"""The tamper-evident audit log: hash-chained records, their head, append-only triggers.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bus.store.schema import BigId, Json, UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: bus.audit.chain.GENESIS_HASH, written out: a migration must not change when code does.
_GENESIS_HASH = "0" * 64
_REFUSAL = "audit_log is append-only: records cannot be changed or deleted"


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, comment="Place in the chain"),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, comment="hop or event"),
        sa.Column("dossier_code", sa.String(40), nullable=True),
        sa.Column("subject", sa.String(64), nullable=False, comment="Message or event id"),
        sa.Column("payload", Json, nullable=False, comment="The hop row or the event, as recorded"),
        sa.Column("digest", sa.String(64), nullable=False, comment="SHA-256 of the content"),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column(
            "hash", sa.String(64), nullable=False, comment="SHA-256 of seq, prev_hash, digest"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("seq", name="uq_audit_log_seq"),
    )
    op.create_index("ix_audit_log_dossier_code", "audit_log", ["dossier_code"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": _GENESIS_HASH}])
    # The database itself refuses to rewrite history, whoever connects: changing a record
    # takes dropping a trigger (or, on PostgreSQL, a superuser's session_replication_role),
    # a deliberate act that `bus audit verify` still catches afterwards.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{_REFUSAL}' USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()"
        )
        # TRUNCATE skips row triggers: refuse it with a statement trigger.
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_log_dossier_code", table_name="audit_log")
    op.drop_table("audit_log")
