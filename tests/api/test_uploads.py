"""Uploads as people send them: one file as the body, or several in one multipart/form-data
request (a browser's form, `curl -F`), on SQLite and PostgreSQL; all attached or none."""
from __future__ import annotations

import hashlib

PDF = b"%PDF-1.4\n%% %d\n%%%%EOF\n"


def pdf(n: int) -> bytes:
    return PDF.replace(b"%d", str(n).encode())


def test_several_files_in_one_multipart_upload_are_attached_with_their_names(client) -> None:
    unit = client.token("unit", unit_id=1)
    files = [("file", ("能耗统计表.pdf", pdf(1), "application/pdf")), ("file", ("节水器具照片.pdf", pdf(2), "application/pdf"))]
    r = client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1"}, files=files, headers=unit)
    assert r.status_code == 201, r.text
    body = r.json()
    assert [f["filename"] for f in body["files"]] == ["能耗统计表.pdf", "节水器具照片.pdf"]
    assert [f["sha256"] for f in body["files"]] == [hashlib.sha256(pdf(n)).hexdigest() for n in (1, 2)]
    listed = client.get("/api/v1/cases/1/evidence", headers=unit).json()
    assert [(e["filename"], e["size"]) for e in listed] == [("能耗统计表.pdf", len(pdf(1))), ("节水器具照片.pdf", len(pdf(2)))]
    got = client.get(f"/api/v1/cases/1/evidence/{body['files'][0]['sha256']}", headers=unit)
    assert got.content == pdf(1)  # the file itself, not the multipart wrapper around it


def test_a_multipart_upload_with_one_bad_file_attaches_none(client) -> None:
    unit = client.token("unit", unit_id=1)
    files = [("file", ("好.pdf", pdf(3), "application/pdf")), ("file", ("坏.exe", b"MZ\x90\x00 not allowed", "x/y"))]
    r = client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1"}, files=files, headers=unit)
    assert r.status_code == 422, r.text
    assert client.get("/api/v1/cases/1/evidence", headers=unit).json() == []


def test_documents_upload_as_multipart_and_filename_renames_a_single_file(client) -> None:
    unit = client.token("unit", unit_id=1)
    r = client.post("/api/v1/cases/1/documents", params={"document": "self_report", "filename": "自评报告.pdf"},
                    files=[("file", ("scan0001.pdf", pdf(4), "application/pdf"))], headers=unit)
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == "自评报告.pdf" and len(r.json()["files"]) == 1
    two = [("file", (f"{n}.pdf", pdf(n), "application/pdf")) for n in (5, 6)]
    r = client.post("/api/v1/cases/1/documents", params={"document": "self_report", "filename": "x.pdf"}, files=two,
                    headers=unit)
    assert r.status_code == 422 and r.json()["error"]["details"]["problems"][0]["where"] == "query.filename"


def test_a_raw_upload_still_needs_its_name_and_a_multipart_one_a_file(client) -> None:
    unit = client.token("unit", unit_id=1)
    r = client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1"}, content=pdf(7), headers=unit)
    assert r.status_code == 422 and r.json()["error"]["details"]["problems"][0]["where"] == "query.filename"
    r = client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1"}, data={"note": "没有文件"},
                    files={"other": ("", b"", "application/octet-stream")}, headers=unit)
    assert r.status_code in (400, 422), r.text


def test_a_file_part_over_the_file_limit_is_413(client) -> None:
    unit = client.token("unit", unit_id=1)
    big = b"%PDF-1.4\n" + b"0" * (1024 * 1024 + 1)  # the client fixture's limit is 1 MiB a file
    r = client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1"},
                    files=[("file", ("大.pdf", big, "application/pdf"))], headers=unit)
    assert r.status_code == 413, r.text
    assert client.get("/api/v1/cases/1/evidence", headers=unit).json() == []
