"""A case holds at most ``evidence_quota_bytes`` bytes and ``evidence_quota_files`` files of
evidence and documents together. An upload past it is refused (413 ``too_large``, as a file
over the size limit) with the quota, what is used and what the upload would add, in English
and Chinese, and nothing is written; two uploads at once cannot both pass. Through the API
(SQLite and PostgreSQL), the service and the CLI.
"""
from __future__ import annotations

import os
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from workflow.adapters.evidence_store import LocalEvidenceStore
from workflow.demo import ADMIN_LOGIN
from workflow.domain.errors import ConflictError
from workflow.service.evidence import EvidenceQuota, QuotaExceeded, attach_bytes, list_evidence

from ..serving import cli_account, run_cli
from ..support import open_shanxi, unit_actor

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)


def pdf(n: int, size: int) -> bytes:
    head = f"%PDF-1.4\n% file {n}\n".encode()
    return head + b"%" * (size - len(head))


def stored_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def event_count(db: Any) -> int:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM events")).scalar()


@pytest.fixture
def quota(client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The client's server with a quota of 10,000 bytes and 3 files per case."""
    settings = client.app.state.application.settings
    monkeypatch.setattr(settings, "evidence_quota_bytes", 10_000)
    monkeypatch.setattr(settings, "evidence_quota_files", 3)
    return settings


def upload(client: Any, data: bytes, name: str, criterion: str = "1.1.1") -> Any:
    return client.post("/api/v1/cases/1/evidence", params={"criterion": criterion, "filename": name}, content=data,
                       headers=client.token("unit", unit_id=1))


def upload_document(client: Any, data: bytes, name: str, document: str = "self_report") -> Any:
    return client.post("/api/v1/cases/1/documents", params={"document": document, "filename": name}, content=data,
                       headers=client.token("unit", unit_id=1))


def test_an_upload_past_the_byte_quota_is_413_and_writes_nothing(client, db, quota) -> None:
    assert upload(client, pdf(1, 4_000), "一.pdf").status_code == 201
    assert upload_document(client, pdf(2, 4_000), "自评报告.pdf").status_code == 201  # documents count too
    before = (event_count(db), stored_files(quota.evidence_dir))
    r = upload(client, pdf(3, 2_001), "三.pdf", "2.1.1")
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "too_large"
    assert error["details"].items() >= {"quota_bytes": 10_000, "quota_files": 3, "used_bytes": 8_000,
                                        "used_files": 2, "adding_bytes": 2_001, "adding_files": 1}.items()
    en, zh = error["message"]["en"], error["message"]["zh"]
    for number in ("10000", "8000", "2001"):  # the quota, what is used, what the file would add
        assert number in en and number in zh
    assert "quota" in en and "配额" in zh and "nothing was attached" in en and "未添加" in zh
    assert [p["where"] for p in error["details"]["problems"]] == ["bytes"]
    assert (event_count(db), stored_files(quota.evidence_dir)) == before
    # exactly the quota is allowed: the refusal was for the one byte too many
    assert upload(client, pdf(3, 2_000), "三.pdf", "2.1.1").status_code == 201


def test_an_upload_past_the_file_quota_is_413(client, db, quota) -> None:
    for n, criterion in enumerate(("1.1.1", "2.1.1"), start=1):
        assert upload(client, pdf(n, 100), f"{n}.pdf", criterion).status_code == 201
    assert upload_document(client, pdf(3, 100), "自评报告.pdf").status_code == 201
    before = event_count(db)
    r = upload_document(client, pdf(4, 100), "自评打分表.pdf", "score_sheet")
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert [p["where"] for p in error["details"]["problems"]] == ["files"]
    assert "3 files" in error["message"]["en"] and "3 个文件" in error["message"]["zh"]
    assert event_count(db) == before


def test_a_removed_file_frees_its_place_but_not_its_bytes(client, quota) -> None:
    """Removing a file gives back its place among the files, not its bytes: the storage keeps
    it for the history, so attaching and removing cannot fill the disk. The same content again
    costs nothing."""
    unit = client.token("unit", unit_id=1)
    for n in (1, 2, 3):
        sha = upload(client, pdf(n, 1_000), f"{n}.pdf").json()["sha256"]
        assert upload(client, pdf(n, 1_000), f"{n}-again.pdf", "2.1.1").status_code in (201, 413)
        version = client.get("/api/v1/cases/1", headers=unit).json()["version"]
        for criterion in ("1.1.1", "2.1.1"):
            client.post("/api/v1/cases/1/actions/remove_evidence", headers=unit,
                        json={"version": version, "data": {"criterion": criterion, "sha256": sha}})
            version = client.get("/api/v1/cases/1", headers=unit).json()["version"]
    assert client.get("/api/v1/cases/1/evidence", headers=unit).json() == []
    refused = upload(client, pdf(9, 8_000), "大.pdf")  # 3,000+ stored before, 8,000 more: past 10,000
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["details"]["used_bytes"] >= 3_000
    assert upload(client, pdf(1, 1_000), "1-back.pdf").status_code == 201  # stored before: no new bytes


class MeetingStore(LocalEvidenceStore):
    """A real store whose ``put`` waits until both uploads have passed the first check: the
    two then record their attachments at the same moment."""

    def __init__(self, root: Path, meeting: threading.Barrier) -> None:
        super().__init__(root, max_bytes=1024 * 1024)
        self.meeting = meeting

    def put(self, data: bytes, filename: str) -> Any:
        self.meeting.wait(timeout=30)
        return super().put(data, filename)


def test_two_uploads_at_once_cannot_both_pass_the_quota(db, tmp_path) -> None:
    """Each fits alone, the two together do not: one is recorded, the other refused (past the
    quota, or a conflict with the case it read), never both."""
    open_shanxi(db, NOW)
    blobs = MeetingStore(tmp_path / "blobs", threading.Barrier(2))
    limit = EvidenceQuota(max_bytes=10_000, max_files=100)
    outcomes: list[Any] = []

    def attach(n: int, criterion: str) -> None:
        try:
            attach_bytes(db, blobs, 1, criterion, [(f"{n}.pdf", pdf(n, 6_000))], unit_actor(1), NOW, quota=limit)
            outcomes.append("attached")
        except (QuotaExceeded, ConflictError) as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attach, args=(n, c)) for n, c in ((1, "1.1.1"), (2, "2.1.1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes)[0] == "attached" and sorted(outcomes)[1] in ("too_large", "conflict"), outcomes
    assert len(list_evidence(db, 1)) == 1


def test_the_cli_attach_commands_keep_the_quota(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/w.db", WORKFLOW_MAILDIR=str(tmp_path / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp_path / "ev"), WORKFLOW_EVIDENCE_QUOTA_FILES="1", COLUMNS="200")
    assert run_cli(["demo", "--example-only"], env, tmp_path).returncode == 0
    cli_account(env, "sw.bgt", "省委办公厅", "unit", "--unit", "1", actor=ADMIN_LOGIN)  # by the demo's admin
    files = []
    for n in (1, 2):
        files.append(tmp_path / f"材料{n}.pdf")
        files[-1].write_bytes(pdf(n, 500))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--actor", "unit:sw.bgt"], env, tmp_path)

    assert run("evidence", "attach", "1", "1.1.1", str(files[0])).returncode == 0
    for refused in (run("evidence", "attach", "1", "2.1.1", str(files[1])),
                    run("documents", "attach", "1", "self_report", str(files[1]))):
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "error (too_large)" in refused.stderr and "配额" in refused.stderr
    assert len(stored_files(tmp_path / "ev")) == 1
