"""spot-check outcomes: what each drawn case's check found, and a held title

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

``spot_check_outcomes``: one row per case and spot check (or filing batch, for the national
bureau's results): passed, or problems found, with the findings, the evidence, who decided and
what it led to. ``cases.held_title``: while a spot check's rectification runs, the state the
title was in (certified or filed), to which a passed recheck returns it.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0013"
down_revision: Union[str, None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "spot_check_outcomes",
        sa.Column("check_id", sa.String(length=100), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("consequence", sa.String(length=32), nullable=False),
        sa.Column("decided_by", sa.String(length=16), nullable=False),
        sa.Column("findings", sa.Text(), nullable=True),
        sa.Column("evidence", sa.String(length=2000), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=400), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"]),
        sa.PrimaryKeyConstraint("check_id", "case_id"),
    )
    op.create_index("ix_spot_check_outcomes_round_id", "spot_check_outcomes", ["round_id"])
    # a plain ADD COLUMN: a batch copy would rewrite every case row
    op.add_column("cases", sa.Column("held_title", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("held_title")
    op.drop_index("ix_spot_check_outcomes_round_id", table_name="spot_check_outcomes")
    op.drop_table("spot_check_outcomes")
