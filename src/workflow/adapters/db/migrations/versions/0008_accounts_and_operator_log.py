"""accounts for people; tokens belong to accounts; the operator audit log

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Every token made before this revision gets an account of its own (login ``token-<id>``, the
token's name as display name, its role and scope), recorded as created by
``system:migration-0008``; the operator streams start empty (what was changed before this
revision was never recorded).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = "0008"
down_revision: Union[str, None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

STREAMS = ("accounts", "tokens", "jurisdictions", "units", "coordinators", "rounds")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("jurisdiction_id", sa.String(length=64), nullable=True),
        sa.Column("home", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=400), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_by", sa.String(length=400), nullable=True),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"]),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdictions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login"),
        sa.UniqueConstraint("home", "name", name="uq_account_home_name"),
    )
    op.create_table(
        "operator_streams",
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("stream"),
    )
    op.create_table(
        "operator_events",
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=400), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("position"),
        sa.UniqueConstraint("stream", "seq", name="uq_operator_event_seq"),
    )
    bind = op.get_bind()
    for stream in STREAMS:  # every stream's head exists, so an append only ever updates it
        bind.execute(sa.text("INSERT INTO operator_streams (stream, version, last_hash) VALUES (:s, 0, :h)"),
                     {"s": stream, "h": "0" * 64})
    if bind.dialect.name == "sqlite":
        op.execute("CREATE TRIGGER operator_events_no_update BEFORE UPDATE ON operator_events "
                   "BEGIN SELECT RAISE(ABORT, 'operator events are append-only: UPDATE refused'); END")
        op.execute("CREATE TRIGGER operator_events_no_delete BEFORE DELETE ON operator_events "
                   "BEGIN SELECT RAISE(ABORT, 'operator events are append-only: DELETE refused'); END")
    else:
        op.execute("CREATE TRIGGER operator_events_append_only BEFORE UPDATE OR DELETE ON operator_events "
                   "FOR EACH ROW EXECUTE FUNCTION events_append_only()")
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_api_tokens_account", "accounts", ["account_id"], ["id"])
        batch.create_index("ix_api_tokens_account_id", ["account_id"])
    _accounts_for_old_tokens(bind)


def _accounts_for_old_tokens(bind: sa.Connection) -> None:
    rows = bind.execute(sa.text(
        "SELECT t.id, t.name, t.role, t.unit_id, t.jurisdiction_id, u.jurisdiction_id, t.created_at "
        "FROM api_tokens t LEFT JOIN units u ON u.id = t.unit_id ORDER BY t.id")).all()
    taken: set[tuple[str, str]] = set()
    # each account is as old as its token (the person has acted since then)
    for token_id, name, role, unit_id, jurisdiction_id, unit_place, created_at in rows:
        home = (unit_place if role == "unit" else jurisdiction_id) or ""
        display = (name or f"token {token_id}")[:40]
        if (home, display) in taken:
            display = f"{display[:30]} ({token_id})"
        taken.add((home, display))
        bind.execute(sa.text(
            "INSERT INTO accounts (login, name, role, unit_id, jurisdiction_id, home, created_at, created_by) "
            "VALUES (:login, :name, :role, :unit, :jur, :home, :at, 'system:migration-0008')"),
            {"login": f"token-{token_id}", "name": display, "role": role, "unit": unit_id,
             "jur": jurisdiction_id, "home": home, "at": created_at})
        account_id = bind.execute(sa.text("SELECT id FROM accounts WHERE login = :login"),
                                  {"login": f"token-{token_id}"}).scalar_one()
        bind.execute(sa.text("UPDATE api_tokens SET account_id = :a WHERE id = :t"), {"a": account_id, "t": token_id})


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index("ix_api_tokens_account_id")
        batch.drop_constraint("fk_api_tokens_account", type_="foreignkey")
        batch.drop_column("account_id")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS operator_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS operator_events_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS operator_events_append_only ON operator_events")
    op.drop_table("operator_events")
    op.drop_table("operator_streams")
    op.drop_table("accounts")
