"""Taking a title back (回头看): ``revoke`` of a certified or filed case, the same on the memory
store, SQLite and PostgreSQL — the state and the event, progress and the kept counts
recomputed, the unit told, and eligible again for a later round."""
from __future__ import annotations

from datetime import timedelta

import pytest

from workflow.domain.errors import ActionRefused, InvalidInput
from workflow.service.audit import verify
from workflow.service.cases import perform_action, read_case
from workflow.service.ports import Storage
from workflow.service.reports import progress

from ..support import COORDINATOR, unit_actor
from .worlds import NOW, rich_world

LATER = NOW + timedelta(days=200)
REASON = "回头看发现能耗统计数据不实"


def certified_share(db: Storage) -> tuple[int, int]:
    row = progress(db, "shanxi-2021", "/shanxi/").rows[0]
    return row.certified_to_date, row.by_state["revoked"]


def test_a_certified_title_is_revoked_and_everything_follows(storage: Storage) -> None:
    world = rich_world(storage)
    case_id, unit_id = world.cases["省直甲"], world.unit("省直甲")
    before, _ = certified_share(storage)
    assert unit_id in storage.rounds.units_done_by("shanxi", 2022)
    done = perform_action(storage, case_id, "revoke", {"reason": REASON, "decided_by": "national",
                                                       "evidence": "国管局通报〔2022〕3号"}, COORDINATOR, LATER)
    case = read_case(storage, case_id, events=True)
    assert case.case.state == "revoked" and done.event.type == "TitleRevoked"
    assert done.event.payload == {"reason": REASON, "decided_by": "national", "evidence": "国管局通报〔2022〕3号",
                                  "previous_state": "certified"}
    after, revoked = certified_share(storage)
    assert (after, revoked) == (before - 1, 1)  # the share of all agencies recomputed from the kept counts
    assert verify(storage).ok  # the kept counts agree with a recount, the chain with the row
    # the unit is told at once, and may take part again in a later round
    notices = [r for r in storage.outbox.rows(case_id=case_id) if r.kind == "revocation_notice"]
    assert len(notices) == 1 and notices[0].status == "pending"
    assert unit_id not in storage.rounds.units_done_by("shanxi", 2022)
    # nothing follows a revocation
    with pytest.raises(ActionRefused):
        perform_action(storage, case_id, "revoke", {"reason": REASON}, COORDINATOR, LATER)


def test_only_a_coordinator_revokes_with_a_reason_and_a_known_decider(storage: Storage) -> None:
    world = rich_world(storage)
    case_id = world.cases["省直甲"]
    with pytest.raises(ActionRefused):
        perform_action(storage, case_id, "revoke", {"reason": REASON}, unit_actor(world.unit("省直甲")), LATER)
    with pytest.raises(InvalidInput) as refused:
        perform_action(storage, case_id, "revoke", {"reason": REASON, "decided_by": "city"}, COORDINATOR, LATER)
    assert [p.where for p in refused.value.problems] == ["decided_by"] and refused.value.problems[0].zh
    with pytest.raises(InvalidInput) as refused:
        perform_action(storage, case_id, "revoke", {}, COORDINATOR, LATER)
    assert [p.where for p in refused.value.problems] == ["reason"]
    assert read_case(storage, case_id).case.state == "certified"  # nothing written
    # a case not certified has no title to take back
    with pytest.raises(ActionRefused):
        perform_action(storage, world.cases["省直乙"], "revoke", {"reason": REASON}, COORDINATOR, LATER)


def test_the_unit_is_told_why_by_mail(storage: Storage) -> None:
    import asyncio

    from notifications.testing import InMemoryTransport
    from workflow.service.dispatch import dispatch

    from ..support import CALENDARS

    world = rich_world(storage)
    case_id = world.cases["省直甲"]
    perform_action(storage, case_id, "revoke", {"reason": REASON, "evidence": "晋直管函〔2022〕5号"}, COORDINATOR,
                   LATER)
    transport = InMemoryTransport()
    asyncio.run(dispatch(storage, CALENDARS, transport, LATER))
    [mail] = transport.to("zhang@example.gov.cn")
    assert "撤销" in mail.subject and REASON in mail.text and "晋直管函〔2022〕5号" in mail.text
    assert "省级机关事务管理局" in mail.text  # decided by the province when not said
    assert "重新参加" in mail.text
