"""The console's self-assessment sheet (web/sheet.py): the unit fills in its sheet (附件3) and
uploads its evidence and documents, then submits; outsiders get 404, read-only roles no forms,
a form without the session's CSRF token changes nothing; files download, images and PDFs
preview inline.

The demo (``workflow demo``) is loaded once per module into a SQLite file on a fixed day and
copied for each test (the database and the evidence folder), so tests change nothing shared.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from workflow.bootstrap import App
from workflow.clock import BUSINESS_TZ
from workflow.service.cases import read_case
from workflow.service.evidence import list_documents, list_evidence
from workflow.service.queries import list_cases

from .worlds import DemoTemplate, csrf_of, demo_app, demo_template, signed_in

NOW = datetime(2025, 11, 20, 10, 30, tzinfo=BUSINESS_TZ)
UNIT = 31  # a unit that has done nothing yet in the demo's live round (registered)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
PDF = b"%PDF-1.4\n% test\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
VERSION = re.compile(r'name="version" value="(\d+)"')


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> DemoTemplate:
    return demo_template(tmp_path_factory, sqlite_template, NOW, name="sheet-world", evidence_max_bytes=1024 * 1024)


@pytest.fixture
def application(world: DemoTemplate, tmp_path: Path) -> Iterator[App]:
    with demo_app(world, tmp_path) as application:
        yield application


@pytest.fixture
def case_id(application: App, world: DemoTemplate) -> int:
    rows = list_cases(application.db, round_id=world.round_id, unit_id=UNIT, limit=5)
    assert len(rows) == 1 and rows[0].state == "registered"
    return rows[0].id


@pytest.fixture
def signed(application: App) -> Iterator[object]:
    """``signed(login)``: a client of the console signed in as ``login`` (its own cookies)."""
    from workflow.api.app import create_app

    api = create_app(application)
    clients: list[TestClient] = []

    def sign_in(login: str) -> TestClient:
        clients.append(signed_in(application, login, api=api))
        return clients[-1]

    yield sign_in
    for client in clients:
        client.close()


def _form(client: TestClient, case_id: int) -> tuple[str, str, str]:
    """(page, csrf, version) of the sheet page."""
    page = client.get(f"/cases/{case_id}/sheet")
    assert page.status_code == 200, page.text
    version = VERSION.search(page.text)
    return page.text, csrf_of(page.text), version.group(1) if version else ""


def _events(application: App, case_id: int, kind: str) -> list:
    return [e for e in read_case(application.db, case_id, events=True).events if e.type == kind]


def _blobs(application: App) -> set[Path]:
    return {p for p in Path(application.settings.evidence_dir).rglob("*") if p.is_file()}


def _row(page: str, code: str) -> str:
    """The table row of a criterion."""
    start = page.index(f'<tr id="c-{code}"')
    return page[start:page.index("</tr>", start)]


# ---------------------------------------------------------------- the page

def test_the_unit_sees_its_sheet_with_a_labelled_field_and_an_upload_per_criterion(application, signed, case_id):
    page, _, _ = _form(signed(f"unit{UNIT:02d}"), case_id)
    rubric = read_case(application.db, case_id).ctx.rubric
    for criterion in rubric.criteria():
        code = re.escape(criterion.code)
        assert re.search(rf'<label [^>]*for="self-{code}"', page), criterion.code
        assert re.search(rf'<input id="self-{code}" name="e_{code}"', page), criterion.code
        assert re.search(rf'<label [^>]*for="file-{code}"', page), criterion.code
        assert re.search(rf'<input type="file" id="file-{code}" name="files" multiple form="up-{code}"', page)
        assert re.search(rf'<form id="up-{code}" [^>]*action="/cases/{case_id}/evidence" '
                         rf'enctype="multipart/form-data"', page)
    for section in rubric.sections:  # laid out as 附件3: 评价单元 (sections) and 评价项目 (items)
        assert f"{section.code} {section.name}" in page
        for item in section.items:
            assert item.name in page
    # the live total (console.js) works on any table with data-sheet, and the page's own script
    assert "data-sheet" in page and "data-total" in page and "/static/console/sheet.js" in page
    # the required documents, each with its upload form; what is missing; submission not yet possible
    for document in read_case(application.db, case_id).ctx.documents:
        assert f'id="doc-{document.id}"' in page and f'value="{document.id}"' in page
    assert 'data-testid="missing"' in page and "未自评打分" in page
    assert re.search(r'<button type="submit" disabled[^>]*>报送自评材料</button>', page)
    # every field of the page is labelled
    for field_id in re.findall(r'<(?:input|textarea|select) [^>]*id="([^"]+)"', page):
        assert f'for="{field_id}"' in page, field_id


def test_a_draft_is_saved_and_shown_again(application, signed, case_id):
    client = signed(f"unit{UNIT:02d}")
    _, csrf, version = _form(client, case_id)
    sent = client.post(f"/cases/{case_id}/sheet", data={"csrf": csrf, "version": version, "e_1.1.1": "8",
                                                        "e_2.2.2": "3", "e_2.1.1": "", "e_5.1.1": "1"},
                       follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == f"/cases/{case_id}/sheet?saved=1"
    [event] = _events(application, case_id, "SelfAssessmentRecorded")
    # points as the sheet prints them; a criterion scored per occurrence: occurrences × points
    assert {k: Decimal(v) for k, v in event.payload["entries"].items()} == {
        "1.1.1": Decimal(8), "2.2.2": Decimal(3), "5.1.1": Decimal(2)}
    assert read_case(application.db, case_id).case.state == "self_assessed"
    page = client.get(sent.headers["location"]).text
    assert "已保存自评表" in page
    assert 'value="8"' in _row(page, "1.1.1") and 'value="3"' in _row(page, "2.2.2")
    assert 'value="1"' in _row(page, "5.1.1")  # shown again as the number of occurrences
    assert 'value=""' in _row(page, "2.1.1")
    # a second save adds to the sheet (the empty fields leave the saved entries as they are)
    _, csrf, version = _form(client, case_id)
    assert client.post(f"/cases/{case_id}/sheet", data={"csrf": csrf, "version": version, "e_2.1.1": "1"},
                       follow_redirects=False).status_code == 303
    entries = read_case(application.db, case_id).case.self_entries
    assert {k: Decimal(v) for k, v in entries.items()} == {"1.1.1": 8, "2.2.2": 3, "5.1.1": 2, "2.1.1": 1}


def test_a_bad_value_comes_back_with_its_problem_and_nothing_is_recorded(application, signed, case_id):
    client = signed(f"unit{UNIT:02d}")
    _, csrf, version = _form(client, case_id)
    before = read_case(application.db, case_id).case.version
    answer = client.post(f"/cases/{case_id}/sheet", data={"csrf": csrf, "version": version, "e_1.1.1": "99",
                                                          "e_2.2.2": "2.5", "e_2.1.1": "1"})
    assert answer.status_code == 422
    row = _row(answer.text, "1.1.1")
    assert 'value="99"' in row and 'aria-invalid="true"' in row
    assert re.search(r'<p class="err" id="err-1\.1\.1">[^<]*99', row)  # the problem, beside its criterion
    assert 'value="2.5"' in _row(answer.text, "2.2.2") and 'id="err-2.2.2"' in _row(answer.text, "2.2.2")
    assert 'value="1"' in _row(answer.text, "2.1.1") and "err-2.1.1" not in answer.text  # the good one kept
    assert 'role="alert"' in answer.text and "自评表未保存" in answer.text  # and listed at the top
    assert _events(application, case_id, "SelfAssessmentRecorded") == []
    assert read_case(application.db, case_id).case.version == before


def test_a_stale_form_is_answered_with_the_values_kept(application, signed, case_id):
    client = signed(f"unit{UNIT:02d}")
    _, csrf, version = _form(client, case_id)
    client.post(f"/cases/{case_id}/evidence", data={"csrf": csrf, "criterion": "1.1.1"},
                files=[("files", ("a.pdf", PDF, "application/pdf"))])
    answer = client.post(f"/cases/{case_id}/sheet", data={"csrf": csrf, "version": version, "e_1.1.1": "7"})
    assert answer.status_code == 409 and 'value="7"' in _row(answer.text, "1.1.1")
    assert _events(application, case_id, "SelfAssessmentRecorded") == []


# ---------------------------------------------------------------- uploads

def _upload_two(client: TestClient, case_id: int):
    """A PDF and a PNG sent at once as evidence of 3.1.2 (the answer, not followed)."""
    _, csrf, _ = _form(client, case_id)
    return client.post(f"/cases/{case_id}/evidence", data={"csrf": csrf, "criterion": "3.1.2"},
                       files=[("files", ("照明改造.pdf", PDF, "application/pdf")),
                              ("files", ("灯具照片.png", PNG, "image/png"))], follow_redirects=False)


def test_two_files_uploaded_at_once_are_both_evidence_of_the_criterion(application, signed, case_id):
    client = signed(f"unit{UNIT:02d}")
    sent = _upload_two(client, case_id)
    assert sent.status_code == 303 and sent.headers["location"].startswith(f"/cases/{case_id}/sheet?uploaded=2")
    listed = list_evidence(application.db, case_id)
    assert sorted((e.criterion, e.filename, e.type) for e in listed) == [
        ("3.1.2", "灯具照片.png", "png"), ("3.1.2", "照明改造.pdf", "pdf")]
    row = _row(client.get(sent.headers["location"]).text, "3.1.2")
    assert "照明改造.pdf" in row and "灯具照片.png" in row
    assert all(f"/cases/{case_id}/evidence/{e.sha256}" in row for e in listed)


def test_a_refused_file_attaches_nothing_and_says_why(application, signed, case_id):
    client = signed(f"unit{UNIT:02d}")
    _, csrf, _ = _form(client, case_id)
    answer = client.post(f"/cases/{case_id}/evidence", data={"csrf": csrf, "criterion": "3.1.2"},
                         files=[("files", ("ok.pdf", PDF, "application/pdf")),
                                ("files", ("setup.exe", b"MZ\x90\x00" + bytes(60), "application/octet-stream"))])
    assert answer.status_code == 422 and "setup.exe" in answer.text
    assert 'id="uperr-3.1.2"' in _row(answer.text, "3.1.2")
    assert list_evidence(application.db, case_id) == []
    # the form sent without a file chosen (a browser sends an empty part)
    answer = client.post(f"/cases/{case_id}/evidence", data={"csrf": csrf, "criterion": "3.1.2"},
                         files=[("files", ("", b"", "application/octet-stream"))])
    assert answer.status_code == 422 and "请选择要上传的文件" in answer.text


def test_an_upload_without_the_csrf_token_is_refused_and_stores_nothing(application, signed, case_id):
    client = signed(f"unit{UNIT:02d}")
    _, csrf, version = _form(client, case_id)
    before = _blobs(application)
    files = [("files", ("新文件.pdf", PDF.replace(b"test", b"fresh"), "application/pdf"))]
    for given in ({}, {"csrf": "x" * len(csrf)}):
        answer = client.post(f"/cases/{case_id}/evidence", data={"criterion": "1.1.1", **given}, files=files)
        assert answer.status_code == 403
        answer = client.post(f"/cases/{case_id}/documents", data={"document": "self_report", **given}, files=files)
        assert answer.status_code == 403
        answer = client.post(f"/cases/{case_id}/sheet", data={"version": version, "e_1.1.1": "8", **given})
        assert answer.status_code == 403
    assert _blobs(application) == before
    assert list_evidence(application.db, case_id) == [] and list_documents(application.db, case_id) == []
    assert read_case(application.db, case_id).case.version == int(version)


# ---------------------------------------------------------------- scope and roles

def test_another_unit_and_another_city_get_404(application, signed, case_id):
    own = signed("unit02")
    page = own.get("/")
    csrf = csrf_of(page.text)
    sha = list_evidence(application.db, list_cases(application.db, unit_id=2, limit=5)[0].id)[0].sha256
    for client, token in ((own, csrf), (signed("coord-taiyuan"), None)):
        token = token or csrf_of(client.get("/").text)
        assert client.get(f"/cases/{case_id}/sheet").status_code == 404
        assert client.post(f"/cases/{case_id}/sheet", data={"csrf": token, "version": "1", "e_1.1.1": "8"}
                           ).status_code == 404
        assert client.post(f"/cases/{case_id}/evidence", data={"csrf": token, "criterion": "1.1.1"},
                           files=[("files", ("a.pdf", PDF, "application/pdf"))]).status_code == 404
        assert client.post(f"/cases/{case_id}/documents", data={"csrf": token, "document": "self_report"},
                           files=[("files", ("a.pdf", PDF, "application/pdf"))]).status_code == 404
        assert client.get(f"/cases/{case_id}/evidence/{sha}").status_code == 404
    assert list_evidence(application.db, case_id) == [] and list_documents(application.db, case_id) == []
    assert _events(application, case_id, "SelfAssessmentRecorded") == []


@pytest.mark.parametrize("login", ["coord-shanxi", "audit-shanxi"])
def test_the_province_sees_the_sheet_read_only(application, signed, case_id, login):
    client = signed(login)
    page = client.get(f"/cases/{case_id}/sheet")
    assert page.status_code == 200 and 'data-testid="read-only"' in page.text
    assert 'name="e_' not in page.text and 'type="file"' not in page.text and "/act/submit" not in page.text
    csrf = csrf_of(page.text)  # (the sign-out form's)
    assert client.post(f"/cases/{case_id}/sheet", data={"csrf": csrf, "version": "1", "e_1.1.1": "8"}
                       ).status_code == 403
    assert client.post(f"/cases/{case_id}/evidence", data={"csrf": csrf, "criterion": "1.1.1"},
                       files=[("files", ("a.pdf", PDF, "application/pdf"))]).status_code == 403
    assert _events(application, case_id, "SelfAssessmentRecorded") == []
    assert list_evidence(application.db, case_id) == []


# ---------------------------------------------------------------- downloads

def test_a_file_downloads_as_an_attachment_and_an_image_previews_inline(application, signed, case_id):
    client = signed(f"unit{UNIT:02d}")
    _, csrf, _ = _form(client, case_id)
    client.post(f"/cases/{case_id}/evidence", data={"csrf": csrf, "criterion": "4.2.3"},
                files=[("files", ("指南照片", PNG, "image/png")), ("files", ("台账.pdf", PDF, "application/pdf"))])
    items = {e.type: e for e in list_evidence(application.db, case_id)}
    png, pdf = items["png"], items["pdf"]

    got = client.get(f"/cases/{case_id}/evidence/{png.sha256}")
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''" in got.headers["content-disposition"] and ".png" in got.headers["content-disposition"]
    assert got.headers["x-content-type-options"] == "nosniff"

    shown = client.get(f"/cases/{case_id}/evidence/{png.sha256}?inline=1")
    assert shown.status_code == 200 and shown.content == PNG
    assert shown.headers["content-type"] == "image/png"
    assert shown.headers["content-disposition"].startswith("inline;")
    assert shown.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in shown.headers["content-security-policy"]
    assert "script-src" not in shown.headers["content-security-policy"]
    shown = client.get(f"/cases/{case_id}/evidence/{pdf.sha256}?inline=1")
    assert shown.headers["content-type"] == "application/pdf" and shown.headers["content-disposition"].startswith(
        "inline;")
    # a file of another case is not served from this one; a malformed hash is refused
    other = list_evidence(application.db, list_cases(application.db, unit_id=2, limit=5)[0].id)[0].sha256
    assert client.get(f"/cases/{case_id}/evidence/{other}").status_code == 404
    assert client.get(f"/cases/{case_id}/evidence/{'0' * 64}").status_code == 404
    assert client.get(f"/cases/{case_id}/evidence/nothex").status_code == 422


# ---------------------------------------------------------------- the whole way

def test_a_complete_sheet_with_its_evidence_and_documents_is_submitted(application, signed, case_id):
    client = signed(f"unit{UNIT:02d}")
    ctx = read_case(application.db, case_id).ctx
    _, csrf, version = _form(client, case_id)
    fields = {f"e_{c.code}": "0" for c in ctx.rubric.criteria()}
    fields.update({"e_1.1.1": "9", "e_5.1.1": "2"})  # two criteria scored: they need evidence
    assert client.post(f"/cases/{case_id}/sheet", data={"csrf": csrf, "version": version, **fields},
                       follow_redirects=False).status_code == 303
    page, _, _ = _form(client, case_id)
    assert "自评9分，需上传佐证材料" in page and 'href="#c-1.1.1"' in page  # still missing: evidence, documents
    for n, code in enumerate(("1.1.1", "5.1.1")):
        assert client.post(f"/cases/{case_id}/evidence", data={"csrf": csrf, "criterion": code},
                           files=[("files", (f"{code}.pdf", PDF + bytes([n]), "application/pdf"))],
                           follow_redirects=False).status_code == 303
    page, _, _ = _form(client, case_id)
    assert re.search(r'<button type="submit" disabled[^>]*>报送自评材料</button>', page)  # documents still missing
    for n, document in enumerate(ctx.documents):
        assert client.post(f"/cases/{case_id}/documents", data={"csrf": csrf, "document": document.id},
                           files=[("files", (f"{document.name}.pdf", PDF + b"doc" + bytes([n]), "application/pdf")),
                                  ("files", (f"{document.name}.png", PNG + bytes([n]), "image/png"))],
                           follow_redirects=False).status_code == 303
    assert len(list_documents(application.db, case_id)) == 2 * len(ctx.documents)
    page, _, version = _form(client, case_id)
    assert 'data-testid="missing"' not in page and "可以报送" in page
    assert re.search(r'<button type="submit" >报送自评材料</button>', page)
    sent = client.post(f"/cases/{case_id}/act/submit", data={"csrf": csrf, "version": version, "note": "请审核"},
                       follow_redirects=False)
    assert sent.status_code == 303, sent.text
    assert read_case(application.db, case_id).case.state == "submitted"
    page = client.get(f"/cases/{case_id}/sheet").text  # now read-only: nothing more to fill in
    assert 'name="e_' not in page and 'type="file"' not in page and 'data-testid="read-only"' in page


def test_a_file_is_removed_from_its_criterion_and_the_removal_is_in_the_history(application, signed, case_id):
    client = signed(f"unit{UNIT:02d}")
    assert _upload_two(client, case_id).status_code == 303
    page, csrf, _ = _form(client, case_id)
    png = next(e for e in list_evidence(application.db, case_id) if e.filename == "灯具照片.png")
    value = f"evidence|3.1.2|{png.sha256}"
    assert f'form="rm" name="remove" value="{value}"' in _row(page, "3.1.2")
    # without the session's token: refused, nothing removed
    assert client.post(f"/cases/{case_id}/files/remove", data={"csrf": "x", "remove": value}).status_code == 403
    assert len(list_evidence(application.db, case_id)) == 2
    # a value that is not a file's: 422 naming the field, nothing removed
    bad = client.post(f"/cases/{case_id}/files/remove", data={"csrf": csrf, "remove": "evidence|3.1.2|../../x"})
    assert bad.status_code == 422 and "remove" in bad.text and len(list_evidence(application.db, case_id)) == 2
    done = client.post(f"/cases/{case_id}/files/remove", data={"csrf": csrf, "remove": value}, follow_redirects=False)
    assert done.status_code == 303 and "removed=1" in done.headers["location"]
    assert [e.filename for e in list_evidence(application.db, case_id)] == ["照明改造.pdf"]
    [removed] = _events(application, case_id, "EvidenceRemoved")
    assert removed.payload["sha256"] == png.sha256 and "via=console" in removed.actor
    assert "已删除该文件" in client.get(done.headers["location"]).text
    # the province's coordinator sees the sheet but no remove button, and may not remove
    coordinator = signed("coord-shanxi")
    assert 'name="remove"' not in coordinator.get(f"/cases/{case_id}/sheet").text
    token = csrf_of(coordinator.get(f"/cases/{case_id}/sheet").text)
    pdf = list_evidence(application.db, case_id)[0]
    refused = coordinator.post(f"/cases/{case_id}/files/remove",
                               data={"csrf": token, "remove": f"evidence|3.1.2|{pdf.sha256}"})
    assert refused.status_code == 403 and len(list_evidence(application.db, case_id)) == 1
