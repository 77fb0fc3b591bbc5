"""audit runs: the console's chain checks, run in the background and kept with their findings;
the operator stream ``mail`` (a failed mail sent again)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

``audit_runs``: one row per check of the hash chains of a scope (a jurisdiction path, or "" for
every one), asked for on the console's audit page or by the nightly job; queued, running, then
done (with its counts and findings as JSON) or failed. And the operator stream ``mail``, on
which every failed mail a person sends again is recorded (who, which mail, the new entry's key).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0011"
down_revision: Union[str, None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "audit_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=400), nullable=False),
        sa.Column("requested_by", sa.String(length=400), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.String(length=400), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.get_bind().execute(sa.text("INSERT INTO operator_streams (stream, version, last_hash) VALUES (:s, 0, :h)"),
                          {"s": "mail", "h": "0" * 64})


def downgrade() -> None:
    op.get_bind().execute(sa.text("DELETE FROM operator_streams WHERE stream = 'mail'"))
    op.drop_table("audit_runs")
