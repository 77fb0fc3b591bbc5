"""Downloads: every one an attachment that is never sniffed as another type, named safely;
evidence sent as it is read (the ZIP written as it is sent, in the thread pool, never whole
in the server's memory); errors found before the first byte answered as clean JSON; a
damaged file never delivered whole; the path parameters of the case routes bounded.

The memory test runs a real ``workflow serve`` and reads its peak resident memory (VmHWM in
/proc/<pid>/status) before and after downloading a case's evidence ZIP.
"""
from __future__ import annotations

import asyncio
import io
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi.testclient import TestClient

from workflow.adapters.evidence_store import LocalEvidenceStore
from workflow.demo import ADMIN_LOGIN
from workflow.service.cases import perform_action

from ..serving import WORKFLOW, cli_account, start_serve, stop
from ..support import COORDINATOR, RUBRICS, attach_documents, ready_to_submit, sheet_for, unit_actor

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
MiB = 1024 * 1024


def pdf(n: int, size: int = 0) -> bytes:
    body = PDF + f"% file {n}\n".encode()
    return body + b"%" * max(0, size - len(body))


def upload(client: Any, name: str, data: bytes, criterion: str = "1.1.1", case_id: int = 1) -> dict[str, Any]:
    r = client.post(f"/api/v1/cases/{case_id}/evidence", params={"criterion": criterion, "filename": name},
                    content=data, headers=client.token("unit", unit_id=case_id))
    assert r.status_code == 201, r.text
    return r.json()


def blob_path(client: Any, sha256: str) -> Path:
    return client.app.state.application.settings.evidence_dir / sha256[:2] / sha256[2:4] / sha256


def served_as_error(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == code and set(r.json()["error"]["message"]) == {"zh", "en"}


def disposition_name(header: str) -> str:
    """The file name an RFC 6266 client takes: ``filename*`` (UTF-8), which wins over ``filename``."""
    star = next(p.strip() for p in header.split(";") if p.strip().startswith("filename*="))
    return unquote(star.removeprefix("filename*=UTF-8''"))


# ---------------------------------------------------------------- headers of every download
def test_every_download_is_an_attachment_that_is_never_sniffed(client, db) -> None:
    name = 'a"; filename="x.html 方案;.pdf'  # quotes, a semicolon, Chinese
    sha = upload(client, name, pdf(1))["sha256"]
    now = client.clock.now()
    ready_to_submit(db, 2, 2, "90", now)
    attach_documents(db, 2, unit_actor(2), now)
    perform_action(db, 2, "submit", {}, unit_actor(2), now)
    perform_action(db, 2, "verify", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), "90")}, COORDINATOR, now)
    perform_action(db, 2, "certify", {}, COORDINATOR, now)
    admin, coordinator = client.token("admin"), client.token("coordinator", jurisdiction_id="shanxi")
    batch = client.post("/api/v1/rounds/shanxi-2021/filings", json={}, headers=coordinator).json()["id"]
    downloads = {
        "/api/v1/cases/1/history.jsonl": "case-1.jsonl", "/api/v1/cases/1/history.csv": "case-1.csv",
        "/api/v1/cases/1/sheets.xlsx": "case-1-sheet.xlsx", "/api/v1/cases/1/evidence.zip": "case-1-evidence.zip",
        f"/api/v1/cases/1/evidence/{sha}": name, "/api/v1/units/1/history.jsonl": "unit-1.jsonl",
        "/api/v1/units/1/history.csv": "unit-1.csv",
        "/api/v1/rounds/shanxi-2021/progress.xlsx": "shanxi-2021-shanxi-progress.xlsx",
        f"/api/v1/filings/{batch}.csv": f"{batch}.csv",
    }
    for url, expected in downloads.items():
        r = client.get(url, headers=coordinator if "/rounds/" in url or "/filings/" in url else admin)
        assert r.status_code == 200, (url, r.text)
        header = r.headers["content-disposition"]
        assert header.startswith('attachment; filename="'), (url, header)
        fallback = header.split('filename="', 1)[1].split('"', 1)[0]
        assert all(32 <= ord(ch) < 127 and ch not in '"\\;' for ch in fallback), (url, header)
        assert disposition_name(header) == expected, url
        assert r.headers["x-content-type-options"] == "nosniff", url


# ---------------------------------------------------------------- the evidence ZIP and one file, streamed
def test_the_zip_is_streamed_with_every_file_in_rubric_order(client) -> None:
    files = {("2.1.1", "制度.pdf"): pdf(1, 300_000), ("1.1.1", "指标.pdf"): pdf(2, 900_000),
             ("1.1.1", "台账.pdf"): pdf(3)}
    for (criterion, name), data in files.items():
        upload(client, name, data, criterion)
    with client.stream("GET", "/api/v1/cases/1/evidence.zip", headers=client.token("admin")) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        assert "content-length" not in r.headers  # sent as it is written, not built first
        body = b"".join(r.iter_bytes())
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    names = archive.namelist()
    assert [n.split("/", 1)[0].split(" ")[0] for n in names] == ["1.1.1", "1.1.1", "2.1.1"]
    assert [n.rsplit(" ", 1)[-1] for n in names] == ["指标.pdf", "台账.pdf", "制度.pdf"]
    for n in names:
        criterion, filename = n.split(" ", 1)[0], n.rsplit(" ", 1)[-1]
        assert archive.read(n) == files[(criterion, filename)]
    assert all(info.flag_bits & 0x08 for info in archive.infolist())  # sizes after the data: no seeking back


def test_one_evidence_file_is_streamed_whole_with_its_length(client) -> None:
    data = pdf(7, 1024 * 1024)
    sha = upload(client, "大文件.pdf", data)["sha256"]
    with client.stream("GET", f"/api/v1/cases/1/evidence/{sha}", headers=client.token("unit", unit_id=1)) as r:
        assert r.status_code == 200 and r.headers["content-length"] == str(len(data))
        assert b"".join(r.iter_bytes()) == data


def test_a_missing_file_is_a_clean_404_before_anything_is_sent(client) -> None:
    sha = upload(client, "丢失.pdf", pdf(1))["sha256"]
    upload(client, "在.pdf", pdf(2), "2.1.1")
    blob_path(client, sha).unlink()
    unit = client.token("unit", unit_id=1)
    served_as_error(client.get("/api/v1/cases/1/evidence.zip", headers=unit), 404, "not_found")
    served_as_error(client.get(f"/api/v1/cases/1/evidence/{sha}", headers=unit), 404, "not_found")


def test_a_damaged_file_is_never_delivered_whole(client, plain_tracebacks) -> None:
    data = pdf(3, 200_000)
    sha = upload(client, "损坏.pdf", data)["sha256"]
    path = blob_path(client, sha)
    damaged = bytearray(path.read_bytes())
    damaged[-10] ^= 0xFF
    path.write_bytes(bytes(damaged))
    served = TestClient(client.app, raise_server_exceptions=False)
    r = served.get(f"/api/v1/cases/1/evidence/{sha}", headers=client.token("unit", unit_id=1))
    assert len(r.content) < len(data) and bytes(damaged) not in r.content
    r = served.get("/api/v1/cases/1/evidence.zip", headers=client.token("unit", unit_id=1))
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(r.content))


def test_the_zip_is_read_and_written_off_the_event_loop(client, monkeypatch) -> None:
    """Every blob chunk of the ZIP is read where no event loop runs: in the thread pool."""
    upload(client, "a.pdf", pdf(1, 100_000))
    upload(client, "b.pdf", pdf(2), "2.1.1")
    seen: list[bool] = []
    chunks = LocalEvidenceStore.chunks

    def spied(self: LocalEvidenceStore, sha256: str, chunk_size: int = 64 * 1024) -> Any:
        for chunk in chunks(self, sha256, chunk_size):
            try:
                asyncio.get_running_loop()
                seen.append(True)
            except RuntimeError:
                seen.append(False)
            yield chunk

    monkeypatch.setattr(LocalEvidenceStore, "chunks", spied)
    r = client.get("/api/v1/cases/1/evidence.zip", headers=client.token("admin"))
    assert r.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(r.content)).namelist()) == 2
    assert len(seen) >= 3 and not any(seen)  # chunks were read, none on the event loop's thread


# ---------------------------------------------------------------- bounded path parameters
@pytest.mark.parametrize("sha256", ["ab" * 31, "AB" * 32, "ab" * 33, "g" * 64, "ab" * 31 + "%20a"])
def test_a_malformed_sha256_is_422(client, sha256: str) -> None:
    r = client.get(f"/api/v1/cases/1/evidence/{sha256}", headers=client.token("admin"))
    served_as_error(r, 422, "invalid_input")
    assert r.json()["error"]["details"]["problems"][0]["where"] == "path.sha256"


def test_a_well_formed_unknown_sha256_is_404(client) -> None:
    served_as_error(client.get(f"/api/v1/cases/1/evidence/{'ab' * 32}", headers=client.token("admin")), 404,
                    "not_found")


@pytest.mark.parametrize("action", ["x" * 41, "Submit", "sub-mit", "submit1", "提交"])
def test_an_odd_action_name_is_422(client, action: str) -> None:
    r = client.post(f"/api/v1/cases/1/actions/{action}", json={"version": 1, "data": {}},
                    headers=client.token("coordinator", jurisdiction_id="shanxi"))
    served_as_error(r, 422, "invalid_input")
    assert r.json()["error"]["details"]["problems"][0]["where"] == "path.action"


def test_a_well_formed_unknown_action_is_still_404(client) -> None:
    r = client.post("/api/v1/cases/1/actions/no_such_action", json={"version": 1, "data": {}},
                    headers=client.token("coordinator", jurisdiction_id="shanxi"))
    served_as_error(r, 404, "not_found")


# ---------------------------------------------------------------- memory of a real server
def _vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _zip_memory_growth(tmp_path: Path, files: int, size: int) -> tuple[int, int]:
    """(peak memory growth of the server while it sends the ZIP, bytes of the ZIP received)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/w.db", WORKFLOW_MAILDIR=str(tmp_path / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp_path / "ev"), WORKFLOW_EVIDENCE_MAX_BYTES=str(size + MiB),
               COLUMNS="200")
    subprocess.run([WORKFLOW, "demo", "--example-only"], env=env, check=True, capture_output=True, timeout=120)
    secret = cli_account(env, "shenji", "审计", "admin", actor=ADMIN_LOGIN, token=True)
    cli_account(env, "sw.bgt", "省委办公厅", "unit", "--unit", "1", actor="shenji")
    for n in range(files):  # random bytes: deflate cannot shrink them
        path = tmp_path / f"证据{n}.pdf"
        with open(path, "wb") as out:
            out.write(b"%PDF-1.4\n")
            for _ in range(size // MiB):
                out.write(os.urandom(MiB))
        done = subprocess.run([WORKFLOW, "evidence", "attach", "1", "1.1.1", str(path), "--actor", "unit:sw.bgt"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        path.unlink()
    proc, base = start_serve(env, tmp_path / "serve.log", "--name", "zip-memory")
    try:
        auth = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{base}/api/v1/cases/1/evidence", headers=auth).status_code == 200  # warmed up
        before = _vm(proc.pid, "VmHWM")
        received = tmp_path / "received.zip"
        with httpx.stream("GET", f"{base}/api/v1/cases/1/evidence.zip", headers=auth, timeout=600) as r, \
                open(received, "wb") as out:
            assert r.status_code == 200
            for chunk in r.iter_bytes():
                out.write(chunk)
        growth = _vm(proc.pid, "VmHWM") - before
    finally:
        stop(proc)
    with zipfile.ZipFile(received) as archive:
        assert len(archive.namelist()) == files and all(i.file_size == size + 9 for i in archive.infolist())
    return growth, received.stat().st_size


@pytest.mark.parametrize("files,size", [
    pytest.param(3, 20 * MiB, id="60 MiB"),
    pytest.param(4, 50 * MiB, id="200 MiB", marks=pytest.mark.slow),
])
def test_sending_the_zip_does_not_hold_it_in_memory(tmp_path: Path, files: int, size: int) -> None:
    """Building the ZIP whole in memory grew the server by about three times the evidence
    (60 MiB: 174-213 MiB, 200 MiB: 599 MiB); streamed, the growth stays a few buffers (about
    10 MiB for either). ``pytest -s`` prints the figures."""
    growth, sent = _zip_memory_growth(tmp_path, files, size)
    print(f"\nZIP of {sent / MiB:.0f} MiB: the server's peak memory (VmHWM) grew by {growth / MiB:.1f} MiB")
    assert sent > files * size
    assert growth < 40 * MiB, f"the server grew by {growth / MiB:.1f} MiB sending a {sent / MiB:.0f} MiB ZIP"
