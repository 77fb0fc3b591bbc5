"""sheets and evidence: the round's rubric snapshot, the case's self-assessment and evidence

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("rounds") as batch_op:
        batch_op.add_column(sa.Column("rubric_data", sa.JSON(), nullable=False, server_default="{}"))
    _snapshot_rubrics_of_open_rounds()
    with op.batch_alter_table("cases") as batch_op:
        batch_op.add_column(sa.Column("self_entries", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("evidence", sa.Text(), nullable=True))


def _snapshot_rubrics_of_open_rounds() -> None:
    """Rounds opened before this version take their rubric from the data files now."""
    bind = op.get_bind()
    rounds = bind.execute(sa.text("SELECT id, rubric_id FROM rounds")).all()
    if not rounds:
        return
    from workflow.adapters.rubric_files import RubricCatalog
    from workflow.config import Settings
    from workflow.domain.rubric import rubric_to_data

    catalog = RubricCatalog(Settings().rubrics_dir)
    table = sa.table("rounds", sa.column("id", sa.String), sa.column("rubric_data", sa.JSON))
    for round_id, rubric_id in rounds:
        bind.execute(table.update().where(table.c.id == round_id)
                     .values(rubric_data=rubric_to_data(catalog.get(rubric_id))))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch_op:
        batch_op.drop_column("evidence")
        batch_op.drop_column("self_entries")
    with op.batch_alter_table("rounds") as batch_op:
        batch_op.drop_column("rubric_data")
