"""the counts behind the progress report, kept with every change

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

``case_counts`` (a round's cases by jurisdiction, level, state, overdue and misses) and
``agency_counts`` (units by jurisdiction, level and the year they count as certified from,
also kept per unit in ``units.certified_since``), filled here from the rows as they are
(``adapters/db/counts.rebuild``) and from now on changed in the transaction of each change.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from workflow.adapters.db.counts import OnConnection, rebuild

revision: str = "0009"
down_revision: Union[str, None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "case_counts",
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("missed", sa.String(length=400), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("round_id", "jurisdiction_id", "level", "state", "overdue", "missed"),
        sqlite_with_rowid=False,  # one B-tree: an upsert writes one page, not the table's and the key's
    )
    op.create_table(
        "agency_counts",
        sa.Column("jurisdiction_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("certified_since", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("jurisdiction_id", "level", "certified_since"),
        sqlite_with_rowid=False,
    )
    # a plain ADD COLUMN (SQLite can add one with a constant default): a batch copy of units
    # would drop the table that cases and accounts refer to
    op.add_column("units", sa.Column("certified_since", sa.Integer(), nullable=False, server_default=sa.text("0")))
    on = OnConnection(op.get_bind())
    rebuild(on.execute, on.rows)


def downgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.drop_column("certified_since")
    op.drop_table("agency_counts")
    op.drop_table("case_counts")
