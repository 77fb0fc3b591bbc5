"""the rules of the documents: sheets in points, required documents, the contact form per
round, targets and units certified before, the jurisdictions' duty streams

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Data: a case row's current self-assessment sheet (``cases.self_entries``) written before this
revision holds, for a per-occurrence criterion, the number of occurrences; from now on sheets
are points. The row is rewritten in points with the round's own rubric snapshot
(``min(count × points, cap)``, the rule those sheets were scored by). Events are never
rewritten: their version-1 payloads are read as they were written (``entries_as_points``).
The contact form given for a round (``cases.contact_form``) is a projection of ContactFormGiven
events, which no case of an earlier release has: it starts false. A round whose contact-form
date has passed was swept already (its misses recorded as they were then), so only a round
still before that date asks its units again to confirm their contact (docs/decisions.md).
"""
import json
from decimal import Decimal
from typing import Any, Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = "0006"
down_revision: Union[str, None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it too): a batch copy of ``cases`` would have to drop a table
    # that the events refer to.
    op.add_column("units", sa.Column("certified_year", sa.Integer(), nullable=True))
    op.add_column("units", sa.Column("certified_note", sa.String(length=200), nullable=True))
    op.add_column("rounds", sa.Column("documents", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("rounds", sa.Column("targets", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("cases", sa.Column("documents", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("contact_form", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "duty_streams",
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("duties", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"]),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdictions.id"]),
        sa.PrimaryKeyConstraint("round_id", "jurisdiction_id"),
    )
    op.create_table(
        "duty_events",
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"]),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdictions.id"]),
        sa.PrimaryKeyConstraint("position"),
        sa.UniqueConstraint("round_id", "jurisdiction_id", "seq", name="uq_duty_event_seq"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TRIGGER duty_events_no_update BEFORE UPDATE ON duty_events "
                   "BEGIN SELECT RAISE(ABORT, 'duty events are append-only: UPDATE refused'); END")
        op.execute("CREATE TRIGGER duty_events_no_delete BEFORE DELETE ON duty_events "
                   "BEGIN SELECT RAISE(ABORT, 'duty events are append-only: DELETE refused'); END")
    else:
        op.execute("CREATE TRIGGER duty_events_append_only BEFORE UPDATE OR DELETE ON duty_events "
                   "FOR EACH ROW EXECUTE FUNCTION events_append_only()")
    _sheets_in_points()


def _per_occurrence(rubric_data: dict[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    """criterion code → (points per occurrence, cap) of the per-occurrence criteria."""
    out = {}
    for section in rubric_data["sections"]:
        for item in section["items"]:
            for c in item["criteria"]:
                if c["per_occurrence"]:
                    out[c["code"]] = (Decimal(str(c["points"])), Decimal(str(c["cap"])))
    return out


def _sheets_in_points() -> None:
    bind = op.get_bind()
    rounds = {}
    for round_id, data in bind.execute(sa.text("SELECT id, rubric_data FROM rounds")):
        rounds[round_id] = _per_occurrence(json.loads(data) if isinstance(data, str) else data)
    rows = bind.execute(sa.text("SELECT id, round_id, self_entries FROM cases WHERE self_entries IS NOT NULL")).all()
    for case_id, round_id, text in rows:
        entries = json.loads(text)
        counted = rounds.get(round_id, {})
        changed = False
        for code, value in entries.items():
            if code in counted:
                points, cap = counted[code]
                entries[code] = format(min(Decimal(value) * points, cap), "f")
                changed = True
        if changed:
            bind.execute(sa.text("UPDATE cases SET self_entries = :entries WHERE id = :id"), {
                "entries": json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
                "id": case_id})


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS duty_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS duty_events_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS duty_events_append_only ON duty_events")
    op.drop_table("duty_events")
    op.drop_table("duty_streams")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("contact_form")
        batch.drop_column("documents")
    with op.batch_alter_table("rounds") as batch:
        batch.drop_column("targets")
        batch.drop_column("documents")
    with op.batch_alter_table("units") as batch:
        batch.drop_column("certified_note")
        batch.drop_column("certified_year")
