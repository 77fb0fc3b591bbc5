"""GET /api/v1/cases (and cases.xlsx) with a name searched for, a milestone missed and a sort:
the id order pages by cursor (``next``) as before, any other order by offset (``next_offset``);
bad sorts, cursors with another sort and unbounded texts are 422."""
from __future__ import annotations

import io
from typing import Any

from openpyxl import load_workbook

from workflow.service.cases import perform_action

from ..support import SYSTEM
from .conftest import NOW


def every_page(client: Any, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every item, following ``next_offset`` page by page."""
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        body = client.get("/api/v1/cases", params={**params, "offset": offset}, headers=headers).json()
        assert body["next"] is None  # never a case id in another order than the id's
        items += body["items"]
        offset = body["next_offset"]
    return items


def test_search_miss_filter_sort_and_offset_paging(client, db) -> None:
    admin = client.token("admin")
    by_id = client.get("/api/v1/cases", params={"limit": 1000}, headers=admin).json()
    assert by_id["next"] is None and by_id["next_offset"] is None and len(by_id["items"]) == 36
    first = client.get("/api/v1/cases", params={"limit": 10}, headers=admin).json()
    assert first["next"] == first["items"][-1]["id"] and first["next_offset"] is None  # the cursor, as before
    assert [i["id"] for i in client.get("/api/v1/cases", params={"limit": 10, "after": first["next"]},
                                        headers=admin).json()["items"]] == [i["id"] for i in by_id["items"][10:20]]

    # the unit's name by code point, ties by id; paged by offset
    names = {i["id"]: i["unit"]["name"] for i in by_id["items"]}
    pages = every_page(client, admin, sort="unit", limit=7)
    assert [i["id"] for i in pages] == sorted(names, key=lambda case_id: (names[case_id], case_id))
    backwards = every_page(client, admin, sort="-unit", limit=100)
    assert [i["id"] for i in backwards] == sorted(names, key=lambda case_id: (names[case_id], -case_id))[::-1]

    # a name searched for: literally, in any ASCII case
    hits = client.get("/api/v1/cases", params={"name": "财政"}, headers=admin).json()["items"]
    assert hits and [i["id"] for i in hits] == [c for c in names if "财政" in names[c]]
    assert client.get("/api/v1/cases", params={"name": "%"}, headers=admin).json()["items"] == []
    assert client.get("/api/v1/cases", params={"name": "_"}, headers=admin).json()["items"] == []
    # in the caller's scope only
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    assert [i["id"] for i in client.get("/api/v1/cases", params={"name": "财政", "sort": "-id"},
                                        headers=city).json()["items"]] == [36]

    # the cases that missed a milestone
    for case_id in (7, 3):
        perform_action(db, case_id, "record_missed_deadline",
                       {"milestone": "self_assessment", "due_on": "2021-05-31", "noticed_on": "2021-10-12",
                        "owed_in": ["registered", "self_assessed"]}, SYSTEM, NOW)
    missed = client.get("/api/v1/cases", params={"missed": "self_assessment", "sort": "-updated"},
                        headers=admin).json()
    assert [i["id"] for i in missed["items"]] == [3, 7] and missed["next_offset"] is None  # updated at once: by id
    assert client.get("/api/v1/cases", params={"missed": "registered"}, headers=admin).json()["items"] == []

    # the workbook: the same list in the same order, every row
    r = client.get("/api/v1/cases.xlsx", params={"sort": "-unit"}, headers=admin)
    assert r.status_code == 200, r.text
    rows = list(load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))
    assert [row[0] for row in rows[2:]] == [i["id"] for i in backwards]
    r = client.get("/api/v1/cases.xlsx", params={"missed": "self_assessment", "name": "财政"}, headers=admin)
    assert [row[0] for row in list(load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))[2:]] \
        == [c for c in (3, 7) if "财政" in names[c]]

    # refused: an unknown sort, a cursor with another sort, texts and offsets out of bounds
    for params in ({"sort": "name"}, {"sort": "unit", "after": 5}, {"name": "x" * 51}, {"offset": -1},
                   {"offset": 1_000_001}, {"missed": "self-assessment"}, {"missed": "x" * 65}):
        r = client.get("/api/v1/cases", params=params, headers=admin)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"]["code"] == "invalid_input" and r.json()["error"]["message"]["zh"], params
    refused = client.get("/api/v1/cases", params={"sort": "unit", "after": 5}, headers=admin).json()["error"]
    assert "offset" in refused["message"]["en"] + str(refused["details"])
