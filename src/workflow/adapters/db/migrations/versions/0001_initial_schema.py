"""initial schema: jurisdictions, units, rounds, cases and the append-only event log

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('jurisdictions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('path', sa.String(length=700), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['jurisdictions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jurisdictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jurisdictions_path'), ['path'], unique=True)

    op.create_table('rounds',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('province_id', sa.String(length=64), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('rubric_id', sa.String(length=64), nullable=False),
    sa.Column('calendar_id', sa.String(length=64), nullable=False),
    sa.Column('target_share', sa.String(length=40), nullable=False),
    sa.Column('pass_mark', sa.String(length=40), nullable=False),
    sa.Column('max_total', sa.String(length=40), nullable=False),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['province_id'], ['jurisdictions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('province_id', 'year', name='uq_round_province_year')
    )
    op.create_table('units',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('jurisdiction_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('contacts', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['jurisdiction_id'], ['jurisdictions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('jurisdiction_id', 'name', name='uq_unit_jurisdiction_name')
    )
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_units_jurisdiction_id'), ['jurisdiction_id'], unique=False)

    op.create_table('cases',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('round_id', sa.String(length=64), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.Column('carried_over_from', sa.Integer(), nullable=True),
    sa.Column('self_total', sa.String(length=40), nullable=True),
    sa.Column('verified_total', sa.String(length=40), nullable=True),
    sa.Column('recheck_total', sa.String(length=40), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('rectification_due', sa.Date(), nullable=True),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['carried_over_from'], ['cases.id'], ),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], ),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'unit_id', name='uq_case_round_unit')
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_unit_id'), ['unit_id'], unique=False)

    op.create_table('events',
    sa.Column('position', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.PrimaryKeyConstraint('position'),
    sa.UniqueConstraint('case_id', 'seq', name='uq_event_case_seq')
    )
    _append_only_events()


# The event log is append-only: the database itself refuses UPDATE and DELETE.
def _append_only_events() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
                   "BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END")
        op.execute("CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
                   "BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END")
    else:
        op.execute("CREATE FUNCTION events_append_only() RETURNS trigger AS $$ "
                   "BEGIN RAISE EXCEPTION 'events are append-only: % refused', TG_OP; END $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
                   "FOR EACH ROW EXECUTE FUNCTION events_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS events_append_only()")
    op.drop_table('events')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_unit_id'))

    op.drop_table('cases')
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_units_jurisdiction_id'))

    op.drop_table('units')
    op.drop_table('rounds')
    with op.batch_alter_table('jurisdictions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jurisdictions_path'))

    op.drop_table('jurisdictions')
