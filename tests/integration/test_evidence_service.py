"""Evidence on cases: stored once by content, attached all-or-nothing, listed and exported in rubric order."""
from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workflow.adapters.db.store import Database
from workflow.adapters.evidence_store import LocalEvidenceStore
from workflow.domain.errors import Incomplete, InvalidInput
from workflow.files import attach_files
from workflow.service.audit import verify
from workflow.service.cases import perform_action
from workflow.service.evidence import EvidenceQuota, attach_document_bytes, export_archive, list_evidence

from ..support import RUBRICS, open_shanxi, sheet_with, unit_actor

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
RUBRIC = RUBRICS.get("shanxi-2020")
MAX = 1024 * 1024
QUOTA = EvidenceQuota(1024**3, 2000)  # the settings' defaults: no test here comes near them


def attach(*args, **kwargs):
    """attach_files within the default quota."""
    return attach_files(*args, quota=QUOTA, **kwargs)


def pdf(tmp_path: Path, name: str, body: str = "") -> Path:
    path = tmp_path / name
    path.write_bytes(f"%PDF-1.4\n% {name} {body}\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n".encode())
    return path


@pytest.fixture
def blobs(tmp_path: Path) -> LocalEvidenceStore:
    return LocalEvidenceStore(tmp_path / "blobs", max_bytes=MAX)


def _stored_files(blobs: LocalEvidenceStore) -> list[Path]:
    return [p for p in blobs.root.rglob("*") if p.is_file()]


def test_submission_waits_for_evidence_then_goes_through(db: Database, blobs, tmp_path: Path) -> None:
    open_shanxi(db, NOW)
    unit = unit_actor(1)
    perform_action(db, 1, "self_assess", {"entries": sheet_with(RUBRIC, {"1.1.1": "9", "2.1.2": "2"})}, unit, NOW)
    with pytest.raises(Incomplete) as err:
        perform_action(db, 1, "submit", {}, unit, NOW)
    assert [p.where for p in err.value.problems] == ["documents.self_report", "documents.score_sheet",
                                                    "1.1.1", "2.1.2"]
    attach_document_bytes(db, blobs, 1, "self_report", [("自评报告.pdf", pdf(tmp_path, "r.pdf").read_bytes())],
                          unit, NOW, quota=QUOTA)
    attach_document_bytes(db, blobs, 1, "score_sheet", [("自评打分表（盖章）.pdf", pdf(tmp_path, "s.pdf").read_bytes())],
                          unit, NOW, quota=QUOTA)
    attach(db, blobs, 1, "2.1.2", [pdf(tmp_path, "管理机构职责.pdf")], unit, NOW, max_bytes=MAX)
    with pytest.raises(Incomplete) as err:
        perform_action(db, 1, "submit", {}, unit, NOW)
    assert [p.where for p in err.value.problems] == ["1.1.1"]
    attach(db, blobs, 1, "1.1.1", [pdf(tmp_path, "能耗指标.pdf")], unit, NOW, max_bytes=MAX)
    assert perform_action(db, 1, "submit", {}, unit, NOW).case.state == "submitted"
    assert verify(db).ok


def test_listing_and_archive_follow_rubric_order(db: Database, blobs, tmp_path: Path) -> None:
    open_shanxi(db, NOW)
    unit = unit_actor(1)
    attach(db, blobs, 1, "5.2.2", [pdf(tmp_path, "培训.pdf")], unit, NOW, max_bytes=MAX)
    attach(db, blobs, 1, "2.2.1.1", [pdf(tmp_path, "创建方案.pdf"), pdf(tmp_path, "附件.pdf")], unit, NOW,
           max_bytes=MAX)
    attach(db, blobs, 1, "1.1.1", [pdf(tmp_path, "指标.exe")], unit, NOW, max_bytes=MAX)
    items = list_evidence(db, 1)
    assert [(i.criterion, i.filename) for i in items] == [
        ("1.1.1", "指标.exe"), ("2.2.1.1", "创建方案.pdf"), ("2.2.1.1", "附件.pdf"), ("5.2.2", "培训.pdf")]
    assert items[1].item_name == "管理制度" and items[0].type == "pdf"
    out = tmp_path / "evidence.zip"
    assert export_archive(db, blobs, 1, out) == 4
    with zipfile.ZipFile(out) as z:
        assert z.namelist() == ["1.1.1 节约能源资源管理/01 指标.pdf", "2.2.1.1 管理制度/01 创建方案.pdf",
                                "2.2.1.1 管理制度/02 附件.pdf", "5.2.2 教育培训/01 培训.pdf"]
        assert z.read("2.2.1.1 管理制度/01 创建方案.pdf") == (tmp_path / "创建方案.pdf").read_bytes()


def test_co_located_units_share_one_stored_file(db: Database, blobs, tmp_path: Path) -> None:
    open_shanxi(db, NOW)
    shared = pdf(tmp_path, "合署办公共用制度.pdf")
    attach(db, blobs, 1, "2.2.2", [shared], unit_actor(1), NOW, max_bytes=MAX)
    attach(db, blobs, 2, "2.2.2", [shared], unit_actor(2), NOW, max_bytes=MAX)
    assert len(_stored_files(blobs)) == 1
    assert list_evidence(db, 1)[0].sha256 == list_evidence(db, 2)[0].sha256


def test_one_bad_file_attaches_none(db: Database, blobs, tmp_path: Path) -> None:
    open_shanxi(db, NOW)
    page = tmp_path / "page.pdf"
    page.write_text("<!doctype html><html><body>not a pdf</body></html>")
    with pytest.raises(InvalidInput, match="page.pdf"):
        attach(db, blobs, 1, "2.2.2", [pdf(tmp_path, "ok.pdf"), page], unit_actor(1), NOW, max_bytes=MAX)
    assert list_evidence(db, 1) == []
    with db.unit_of_work() as uow:
        assert uow.get(1).version == 1


def test_oversized_file_is_refused_before_anything_is_stored(db: Database, blobs, tmp_path: Path) -> None:
    open_shanxi(db, NOW)
    big = pdf(tmp_path, "big.pdf", "x" * 2000)
    with pytest.raises(InvalidInput) as err:
        attach(db, blobs, 1, "2.2.2", [big], unit_actor(1), NOW, max_bytes=1000)
    assert "the limit is 1000" in str(err.value) and "big.pdf" in str(err.value)
    assert _stored_files(blobs) == [] and list_evidence(db, 1) == []


def test_unknown_criterion_and_double_attachment_are_refused(db: Database, blobs, tmp_path: Path) -> None:
    open_shanxi(db, NOW)
    f = pdf(tmp_path, "a.pdf")
    with pytest.raises(InvalidInput, match="no criterion '9.9.9'"):
        attach(db, blobs, 1, "9.9.9", [f], unit_actor(1), NOW, max_bytes=MAX)
    attach(db, blobs, 1, "2.2.2", [f], unit_actor(1), NOW, max_bytes=MAX)
    with pytest.raises(InvalidInput, match="already attached"):
        attach(db, blobs, 1, "2.2.2", [f], unit_actor(1), NOW, max_bytes=MAX)
    assert len(list_evidence(db, 1)) == 1


def test_removed_evidence_leaves_the_list_but_not_the_history(db: Database, blobs, tmp_path: Path) -> None:
    open_shanxi(db, NOW)
    r = attach(db, blobs, 1, "2.2.2", [pdf(tmp_path, "a.pdf")], unit_actor(1), NOW, max_bytes=MAX)
    sha = r[0].event.payload["sha256"]
    perform_action(db, 1, "remove_evidence", {"criterion": "2.2.2", "sha256": sha}, unit_actor(1), NOW)
    assert list_evidence(db, 1) == []
    with db.unit_of_work() as uow:
        assert [e.type for e in uow.events(1)] == ["CaseRegistered", "EvidenceAttached", "EvidenceRemoved"]
    assert verify(db).ok


def test_another_unit_cannot_attach_to_my_case(db: Database, blobs, tmp_path: Path) -> None:
    open_shanxi(db, NOW)
    from workflow.domain.errors import ActionRefused

    with pytest.raises(ActionRefused, match="own unit"):
        attach(db, blobs, 1, "2.2.2", [pdf(tmp_path, "a.pdf")], unit_actor(2), NOW, max_bytes=MAX)


def test_a_refused_attachment_stores_no_bytes(db: Database, blobs, tmp_path: Path) -> None:
    """Nothing is written for an attachment the case refuses: not the event, not the file."""
    open_shanxi(db, NOW)
    from workflow.domain.errors import ActionRefused, NotFound

    f = pdf(tmp_path, "a.pdf")
    with pytest.raises(NotFound):
        attach(db, blobs, 999, "2.2.2", [f], unit_actor(1), NOW, max_bytes=MAX)
    with pytest.raises(InvalidInput, match="no criterion"):
        attach(db, blobs, 1, "9.9.9", [f], unit_actor(1), NOW, max_bytes=MAX)
    with pytest.raises(ActionRefused):
        attach(db, blobs, 1, "2.2.2", [f], unit_actor(2), NOW, max_bytes=MAX)
    page = tmp_path / "page.pdf"
    page.write_text("<!doctype html><html></html>")
    with pytest.raises(InvalidInput, match="page.pdf"):
        attach(db, blobs, 1, "2.2.2", [f, page], unit_actor(1), NOW, max_bytes=MAX)
    assert _stored_files(blobs) == []
