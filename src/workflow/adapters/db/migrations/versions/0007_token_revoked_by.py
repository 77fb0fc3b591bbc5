"""who revoked a token

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

A revocation records who made it (``api_tokens.revoked_by``, the actor as written in the
history, e.g. ``admin:王科长``). Tokens revoked before this revision keep ``revoked_by``
empty: nobody recorded who revoked them.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = "0007"
down_revision: Union[str, None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("revoked_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("revoked_by")
