"""The event source's chain heads and filing batches (what the checkpoints and the audit read), on
every backend, whole and by subtree."""
from __future__ import annotations

from datetime import timedelta

from workflow.domain.duties import apply_duty, record_done
from workflow.service.cases import perform_action
from workflow.service.checkpoints import merkle_root, new_checkpoint
from workflow.service.oversight import file_round
from workflow.service.ports import ChainHead, Storage

from ..support import CALENDARS, COORDINATOR, unit_actor
from .worlds import NOW, add_round, certify, directory, register, round_record

CITY_REPORT = {d.id: d for d in CALENDARS.get("shanxi-2021").duties()}["city_report"]
REPORT = [{"sha256": "0" * 64, "filename": "年度创建情况.pdf", "size": 10, "type": "pdf"}]


def _duty(db: Storage, jurisdiction: str) -> None:
    with db.unit_of_work(core=True) as uow:
        stream = uow.duties.stream("shanxi-2021", jurisdiction)
        event = record_done(stream, CITY_REPORT, actor="coordinator:wang", now=NOW, due_on=NOW.date(),
                            attachments=REPORT)
        uow.duties.append(stream, event, apply_duty(stream, event), NOW)
        uow.commit()


def test_the_chain_heads_are_the_last_stored_events(storage: Storage) -> None:
    assert list(storage.chain_heads()) == []
    world = directory(storage)
    add_round(storage, round_record())
    ids = [register(world, name) for name in ("省直甲", "太原丙", "大同戊")]
    perform_action(storage, ids[1], "self_assess", {"entries": {"1.1.1": "9"}}, unit_actor(world.unit("太原丙")),
                   NOW + timedelta(minutes=1))
    _duty(storage, "shanxi-taiyuan")
    with storage.unit_of_work(core=True) as uow:  # two operator streams, one with two events
        for stream_name, type_ in (("units", "UnitCreated"), ("rounds", "RoundOpened"), ("units", "UnitChanged")):
            uow.operator.append(stream_name, type_, "admin:test;via=cli", NOW, {"n": 1})
        uow.commit()
    with storage.reader() as uow:
        last = {case_id: uow.events(case_id)[-1] for case_id in ids}
    stream = storage.duties.stream("shanxi-2021", "shanxi-taiyuan")
    every = list(storage.chain_heads())
    heads = [h for h in every if h.kind != "operator"]
    assert heads == [*(ChainHead("case", str(i), last[i].seq, last[i].hash) for i in ids),
                     ChainHead("duties", "shanxi-2021/shanxi-taiyuan", 1, stream.last_hash)]
    assert [h.seq for h in heads] == [1, 2, 1, 1]
    # then the operator streams (the whole database's only), each at its last event
    operator: dict[str, tuple[int, str]] = {}
    for e in storage.operator.events():
        operator[f"operator/{e.stream_name}"] = (e.seq, e.hash)
    assert len(operator) == 2 and operator["operator/units"][0] == 2 and every[len(heads):] == [ChainHead("operator", k, *v) for k, v in sorted(operator.items())]
    taiyuan = storage.within("/shanxi/shanxi-taiyuan/")
    assert list(taiyuan.chain_heads()) == [heads[1], heads[3]]
    assert list(storage.within("/hunan/").chain_heads()) == []
    checkpoint = new_checkpoint(storage.chain_heads(), NOW, None, "0" * 64)
    assert checkpoint.merkle_root == merkle_root(every) and checkpoint.counts == {
        "cases": 3, "case_events": 4, "duty_streams": 1, "duty_events": 1, "operator_streams": len(operator),
        "operator_events": sum(seq for seq, _ in operator.values())}


def test_the_filing_batches_of_a_subtree_and_above_it(storage: Storage) -> None:
    assert list(storage.all_filings()) == []
    world = directory(storage)
    add_round(storage, round_record())
    province, city = register(world, "省直甲"), register(world, "太原丙")
    certify(world, "省直甲", province)
    certify(world, "太原丙", city)
    city_batch = file_round(storage, "shanxi-2021", "shanxi-taiyuan", actor=COORDINATOR, now=NOW + timedelta(hours=1))
    register(world, "大同戊")
    assert [(b.id, b.jurisdiction_id, [c["case_id"] for c in b.cases], b.path) for b in storage.all_filings()] == [
        ("shanxi-2021-filing-1", "shanxi-taiyuan", [city], "/shanxi/shanxi-taiyuan/")]
    province_batch = file_round(storage, "shanxi-2021", "shanxi", actor=COORDINATOR, now=NOW + timedelta(hours=2))
    assert [b.id for b in storage.all_filings()] == [city_batch.id, province_batch.id]
    assert list(storage.all_filings()) == [city_batch, province_batch]
    # a city's auditor sees its own batches and the province's (which may list its cases), not a sibling's
    assert [b.id for b in storage.within("/shanxi/shanxi-taiyuan/").all_filings()] == [city_batch.id,
                                                                                      province_batch.id]
    assert [b.id for b in storage.within("/shanxi/shanxi-datong/").all_filings()] == [province_batch.id]
    assert list(storage.within("/hunan/").all_filings()) == []
