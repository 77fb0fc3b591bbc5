"""/docs works without the internet: Swagger UI's files are served by the app itself, the page
names no other host, and its Content-Security-Policy lets the browser load nothing from one."""
from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.bootstrap import App
from workflow.clock import ManualClock
from workflow.config import REPO_ROOT, Settings


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path):
    from workflow.api.app import create_app

    engine = make_engine(sqlite_url)
    application = App(settings=Settings(database_url=sqlite_url, evidence_dir=tmp_path / "ev",
                                        maildir=tmp_path / "mail"),
                      engine=engine, db=Database(engine), clock=ManualClock(datetime(2026, 7, 1, tzinfo=UTC)),
                      calendars=CalendarCatalog(REPO_ROOT / "calendars"))
    with TestClient(create_app(application)) as c:
        yield c
    engine.dispose()


def test_the_docs_page_and_every_file_it_loads_come_from_the_app(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert not re.search(r"https?://", html), re.findall(r"https?://[^\s\"'<>]+", html)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {Path(a).name for a in assets} == {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}, assets
    kinds = {"js": "javascript", "css": "text/css", "png": "image/png"}
    for url in assets:
        assert url.startswith("/"), url  # on this server
        got = client.get(url)
        assert got.status_code == 200 and kinds[url.rsplit(".", 1)[1]] in got.headers["content-type"], url
        assert len(got.content) > 100
    [spec_url] = re.findall(r"url: '([^']+)'", html)
    spec = client.get(spec_url)
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.1")
    # Swagger UI 4 cannot read OpenAPI 3.1 ("Unable to render this definition"): the build is 5 or later
    bundle = client.get(next(a for a in assets if a.endswith(".js"))).text
    [version] = re.findall(r'PACKAGE_VERSION:"(\d+)\.\d+\.\d+"', bundle)
    assert int(version) >= 5
    assert "validatorUrl" in html and '"validatorUrl": null' in html  # no badge fetched from swagger.io


def test_the_docs_page_may_load_nothing_from_another_host(client: TestClient) -> None:
    page = client.get("/docs")
    policy = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:" and policy["frame-ancestors"] == "'none'"
    [inline] = re.findall(r"<script>(.*?)</script>", page.text, re.S)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"  # the bundle, and only this inline script
    assert not any("http" in source for source in policy.values())
    assert page.headers["x-content-type-options"] == "nosniff"  # the usual headers are still there


def test_there_is_no_page_that_loads_from_a_cdn(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404
    assert "/docs" not in client.get("/openapi.json").json()["paths"]
