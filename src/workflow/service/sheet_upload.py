"""A printed score sheet (附件3) come back: the workbook the system wrote for a case, filled in
(in Excel, WPS or LibreOffice) and uploaded, recorded as the case's self-assessment (a unit)
or verification (a coordinator).

The service does not read spreadsheets: the outer layer hands it the reader
(``adapters/score_sheet_upload.read_score_sheet``, bound to the deployment's sheet limits), as it
hands a roster's rows to the directory. The service says what the sheet must be (:class:`SheetForm`:
this case, its round, its unit, its round's rubric, which column), the reader returns the
entries or raises one ``InvalidInput`` naming every problem by row and criterion, and then the
action is taken like any other (``perform_action``): nothing is recorded unless all is right,
and not if the case changed while the sheet was read.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ..domain.case import Actor, decide
from ..domain.errors import InvalidInput, Problem
from ..domain.rubric import Rubric
from .cases import ActionResult, perform_action, read_case
from .ports import Storage

# What a sheet records, and the action that records it.
KINDS = {"self": "self_assess", "verify": "verify"}


@dataclass(frozen=True, slots=True)
class SheetForm:
    """What an uploaded sheet must be: the score sheet of ``case_id`` (of ``unit_name``, in
    ``round_id``), scored against ``rubric``, its ``kind`` column filled in (``"self"``: 自评得分;
    ``"verify"``: 核查得分, every criterion)."""

    case_id: int
    round_id: str
    unit_name: str
    rubric: Rubric
    kind: str

    @property
    def complete(self) -> bool:
        """A verification scores every criterion; a self-assessment may be entered in parts."""
        return self.kind == "verify"


# (the file's bytes, its name for messages, the form) -> {criterion code: points}
SheetReader = Callable[[bytes, str, SheetForm], dict[str, Decimal]]


def sheet_form(db: Storage, case_id: int, kind: str, actor: Actor, now: datetime) -> tuple[SheetForm, int]:
    """The form an upload for the case must match, and the case's version as read. Refused
    first, as the action itself would refuse it, when the actor may not take it on the case as
    it is (its role, its unit, the case's state): the sheet is read only for an action that can
    be taken."""
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}",
                           [Problem("kind", f"must be one of {', '.join(KINDS)}",
                                    "须为 self（自评）或 verify（核查）")], "评分表类型有误")
    found = read_case(db, case_id)
    try:
        decide(found.case, KINDS[kind], None, actor, now, found.ctx)
    except InvalidInput:
        pass  # the action can be taken: only its entries, the sheet's, are missing
    unit = db.directory.unit(found.case.unit_id)
    assert unit is not None  # a case's unit is never deleted
    return SheetForm(case_id, found.case.round_id, unit.name, found.ctx.rubric, kind), found.case.version


def record_sheet_upload(db: Storage, case_id: int, data: bytes, actor: Actor, now: datetime, *,
                        kind: str = "self", read: SheetReader, source: str = "score sheet") -> ActionResult:
    """Read the filled-in score sheet ``data`` (named ``source`` in messages) with ``read`` and
    record it on the case: ``kind="self"`` as the unit's self-assessment (``self_assess``),
    ``"verify"`` as the coordinator's verification (``verify``). The action's own refusals (who
    may, in which state) come first, before the sheet is read; then every problem of the sheet,
    named by its row and criterion, and nothing is recorded. A case that changed while the sheet
    was read is a conflict."""
    form, version = sheet_form(db, case_id, kind, actor, now)
    entries = read(data, source, form)
    return perform_action(db, case_id, KINDS[kind], {"entries": entries}, actor, now, expected_version=version)
