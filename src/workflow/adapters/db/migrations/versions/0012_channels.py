"""robot channels: WeCom and DingTalk group robots and bureaus' webhooks; the outbox's deliveries to them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

``channels``: a group robot or webhook of a jurisdiction (for its units, or its coordinators) or
of one unit, with its URL and signing secret. ``outbox.channel_id``: a row with one is the
delivery of a notification to that channel (the mail's row has none); each is delivered once
per reason and channel, as the mail is. And the operator stream ``channels`` (who added or
stopped a channel).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0012"
down_revision: Union[str, None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("jurisdiction_id", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=400), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdictions.id"]),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_channels_jurisdiction_id", "channels", ["jurisdiction_id"])
    op.create_index("ix_channels_unit_id", "channels", ["unit_id"])
    # a plain ADD COLUMN (a batch copy would rewrite the outbox, which other tables do not refer
    # to but which may be large): SQLite takes the reference in the column's definition, which
    # Alembic would try to add as a separate constraint
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE outbox ADD COLUMN channel_id INTEGER REFERENCES channels (id)")
    else:
        op.add_column("outbox", sa.Column("channel_id", sa.Integer(), sa.ForeignKey("channels.id"), nullable=True))
    op.get_bind().execute(sa.text("INSERT INTO operator_streams (stream, version, last_hash) VALUES (:s, 0, :h)"),
                          {"s": "channels", "h": "0" * 64})


def downgrade() -> None:
    op.get_bind().execute(sa.text("DELETE FROM operator_streams WHERE stream = 'channels'"))
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("channel_id")
    op.drop_index("ix_channels_unit_id", table_name="channels")
    op.drop_index("ix_channels_jurisdiction_id", table_name="channels")
    op.drop_table("channels")
