"""Uploaded file names: a name with a control character or a bidirectional override (which
makes ``报告‮fdp.exe`` read as ``报告exe.pdf``) is refused wherever files are accepted —
evidence, documents, a duty's attachment, the CLI — with the name shown escaped, and nothing
is written. Ordinary names (Chinese, spaces, quotes, ``+ - @``) are kept as given.
"""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from workflow.adapters.evidence_store import LocalEvidenceStore
from workflow.demo import ADMIN_LOGIN
from workflow.domain.errors import InvalidInput
from workflow.service.evidence import EvidenceQuota, attach_bytes, list_evidence

from ..serving import cli_account, run_cli
from ..support import open_shanxi, unit_actor

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
QUOTA = EvidenceQuota(1024**3, 2000)

BAD_NAMES = {
    "right-to-left override": "报告\u202efdp.exe",
    "left-to-right override": "a\u202db.pdf",
    "isolate": "a\u2066b\u2069.pdf",
    "right-to-left mark": "a\u200f.pdf",
    "arabic letter mark": "a\u061c.pdf",
    "newline": "a\nb.pdf",
    "carriage return": "a\rContent-Type: text/html.pdf",
    "tab": "a\tb.pdf",
    "escape": "a\x1b[31mb.pdf",
    "delete": "a\x7fb.pdf",
    "line separator": "a\u2028b.pdf",
    "zero-width joiner": "a\u200db.pdf",
    "folder": "../a.pdf",
}
GOOD_NAMES = ["自评报告（盖章） 2021.pdf", 'a "quoted"; name.pdf', "+plus.pdf", "-minus.pdf", "@at.pdf", "=eq.pdf"]


def snapshot(db: Any, folder: Path) -> tuple[int, list[str]]:
    with db.engine.connect() as conn:
        events = conn.execute(text("SELECT count(*) FROM events")).scalar()
    return events, sorted(str(p) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def refused_name(r: Any, name: str) -> None:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_input"
    [problem] = error["details"]["problems"]
    assert problem["where"] == "filename" and problem["zh"]
    assert problem["what"].startswith(repr(name))  # escaped: the name cannot disguise the message
    assert not any(ch in problem["what"] for ch in "\u202e\u202d\u2066\u200f\n\r\x1b")


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_evidence_and_documents_with_a_bad_name_are_refused(client, db, name: str) -> None:
    folder = client.app.state.application.settings.evidence_dir
    before = snapshot(db, folder)
    unit = client.token("unit", unit_id=1)
    refused_name(client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1", "filename": name},
                             content=PDF, headers=unit), name)
    refused_name(client.post("/api/v1/cases/1/documents", params={"document": "self_report", "filename": name},
                             content=PDF, headers=unit), name)
    assert snapshot(db, folder) == before


def test_a_duty_attachment_with_a_bad_name_is_refused(client, db) -> None:
    folder = client.app.state.application.settings.evidence_dir
    before = snapshot(db, folder)
    name = BAD_NAMES["right-to-left override"]
    r = client.post("/api/v1/rounds/shanxi-2021/duties/city_report", params={"jurisdiction": "shanxi-taiyuan",
                                                                             "filename": name},
                    content=PDF, headers=client.token("admin"))
    refused_name(r, name)
    assert snapshot(db, folder) == before


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_ordinary_names_are_kept_as_given(client, name: str) -> None:
    unit = client.token("unit", unit_id=1)
    r = client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1", "filename": name}, content=PDF,
                    headers=unit)
    assert r.status_code == 201, r.text
    assert [e["filename"] for e in client.get("/api/v1/cases/1/evidence", headers=unit).json()] == [name]


def test_one_bad_name_among_several_files_attaches_none(db, tmp_path) -> None:
    open_shanxi(db, NOW)
    blobs = LocalEvidenceStore(tmp_path / "blobs")
    files = [("好.pdf", PDF), (BAD_NAMES["isolate"], PDF + b"%2"), ("也好.pdf", PDF + b"%3")]
    with pytest.raises(InvalidInput) as caught:
        attach_bytes(db, blobs, 1, "1.1.1", files, unit_actor(1), NOW, quota=QUOTA)
    assert [p.where for p in caught.value.problems] == ["filename"]
    assert "\\u2066" in caught.value.problems[0].what and "\u2066" not in caught.value.problems[0].what
    assert list_evidence(db, 1) == [] and not (tmp_path / "blobs").exists()


def test_the_cli_refuses_a_file_whose_name_disguises_it(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/w.db", WORKFLOW_MAILDIR=str(tmp_path / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp_path / "ev"), COLUMNS="200")
    assert run_cli(["demo", "--example-only"], env, tmp_path).returncode == 0
    cli_account(env, "sw.bgt", "省委办公厅", "unit", "--unit", "1", actor=ADMIN_LOGIN)  # by the demo's admin
    disguised = tmp_path / BAD_NAMES["right-to-left override"]
    disguised.write_bytes(PDF)
    for command in (["evidence", "attach", "1", "1.1.1"], ["documents", "attach", "1", "self_report"]):
        done = run_cli([*command, str(disguised), "--actor", "unit:sw.bgt"], env, tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "\\u202e" in done.stderr and "bidirectional" in done.stderr
    assert not (tmp_path / "ev").exists() or not any(p.is_file() for p in (tmp_path / "ev").rglob("*"))
