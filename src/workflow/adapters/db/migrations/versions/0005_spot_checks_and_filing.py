"""spot checks (抽查), filing batches (备案), idempotency keys, simulation progress, cases by round

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = "0005"
down_revision: Union[str, None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_cases_round_id", "cases", ["round_id"])
    op.create_table(
        "spot_checks",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction_id", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("share", sa.String(length=40), nullable=False),
        sa.Column("population", sa.JSON(), nullable=False),
        sa.Column("drawn", sa.JSON(), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("drawn_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdictions.id"]),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_spot_checks_round_id", "spot_checks", ["round_id"])
    op.create_table(
        "filing_batches",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction_id", sa.String(length=64), nullable=False),
        sa.Column("cases", sa.JSON(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("filed_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdictions.id"]),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_filing_batches_round_id", "filing_batches", ["round_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("what", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("ref", sa.String(length=100), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "simulation_progress",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("scenario", sa.String(length=500), nullable=False),
        sa.Column("day_done", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("digest"),
    )


def downgrade() -> None:
    op.drop_index("ix_cases_round_id", table_name="cases")
    op.drop_table("simulation_progress")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_filing_batches_round_id", table_name="filing_batches")
    op.drop_table("filing_batches")
    op.drop_index("ix_spot_checks_round_id", table_name="spot_checks")
    op.drop_table("spot_checks")
