"""The simulation store's contract: how far a run got, and the refusals it met (kept among the
idempotency keys, cut to 100 characters)."""
from __future__ import annotations

from datetime import date

import pytest

from workflow.domain.errors import AlreadyExists
from workflow.service.ports import Remembered, Storage

from .worlds import NOW


def test_progress_of_a_run(storage: Storage) -> None:
    assert storage.simulations.progress("d1") == (False, None)
    with storage.unit_of_work(core=True) as uow:
        uow.simulations.start("d1", "scenarios/shanxi.yaml")
        uow.simulations.finish_day("d2", date(2021, 6, 1))  # not started: nothing happens
        assert uow.simulations.progress("d1") == (True, None)
        assert storage.simulations.progress("d1") == (False, None)
        uow.commit()
    assert storage.simulations.progress("d1") == (True, None)
    assert storage.simulations.progress("d2") == (False, None)
    for day in (date(2021, 6, 1), date(2021, 6, 2)):
        with storage.unit_of_work(core=True) as uow:
            uow.simulations.finish_day("d1", day)
            uow.commit()
    assert storage.simulations.progress("d1") == (True, date(2021, 6, 2))
    with storage.unit_of_work(core=True) as uow:
        uow.simulations.finish_day("d1", date(2021, 6, 3))  # not committed
    assert storage.simulations.progress("d1") == (True, date(2021, 6, 2))


def test_refusals_are_remembered_cut_to_a_hundred_characters(storage: Storage) -> None:
    long = "理由" * 60
    assert storage.simulations.refusal("step-1") is None
    with storage.unit_of_work(core=True) as uow:
        uow.simulations.remember_refusal("step-1", "submit refused: the sheet is incomplete", NOW)
        uow.simulations.remember_refusal("step-2", long, NOW)
        assert uow.simulations.refusal("step-1") == "submit refused: the sheet is incomplete"
        uow.commit()
    assert storage.simulations.refusal("step-1") == "submit refused: the sheet is incomplete"
    assert storage.simulations.refusal("step-2") == long[:99] + "…"
    assert len(storage.simulations.refusal("step-2") or "") == 100
    assert storage.simulations.refusal("step-3") is None
    with storage.reader() as uow:
        assert uow.recall("step-1:refused") == Remembered("refused", None, None,
                                                          "submit refused: the sheet is incomplete", "")
        assert uow.recall("step-1") is None


def test_a_refusal_not_committed_is_forgotten(storage: Storage) -> None:
    with storage.unit_of_work(core=True) as uow:
        uow.simulations.remember_refusal("step-1", "refused", NOW)
    assert storage.simulations.refusal("step-1") is None


# ---------------------------------------------------------------- known bugs of the SQL adapters

def test_a_run_started_twice_is_refused_as_already_existing(storage: Storage) -> None:
    with storage.unit_of_work(core=True) as uow:
        uow.simulations.start("d1", "a.yaml")
        uow.commit()
    with pytest.raises(AlreadyExists), storage.unit_of_work(core=True) as uow:
        uow.simulations.start("d1", "a.yaml")
