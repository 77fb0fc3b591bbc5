"""Importing jurisdictions and unit rosters from CSV, on SQLite and on PostgreSQL.

Every bad input must be refused as a whole: an ``InvalidInput`` whose problems name
``file:line`` (as a person counts lines in the file: header = line 1, blank lines
counted) and say what is wrong, and not one row written, good rows included.
"""
from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.adapters.db.tables import Jurisdiction, Unit
from workflow.clock import ManualClock
from workflow.domain.errors import InvalidInput, Problem
from workflow.domain.units import CATEGORIES
from workflow.files import import_jurisdictions, import_units
from workflow.service.directory import ImportResult

from ..support import EXAMPLES, OPERATOR, OPERATOR_NOW, seed_jurisdictions

UNITS_CSV = EXAMPLES / "shanxi-2021-units.csv"
JURISDICTIONS_CSV = EXAMPLES / "jurisdictions.csv"
CN_HEADER = "序号,单位名称,所属地区,层级,类别,联系人,职务,联系方式,电子邮箱"
EN_HEADER = "no,name,jurisdiction,level,category,contact_name,contact_position,contact_phone,contact_email"


# ---------------------------------------------------------------- helpers
def count(db: Database, model: Any) -> int:
    with Session(db.engine) as session:
        return session.exec(select(func.count()).select_from(model)).scalar_one()


def units(db: Database) -> list[Unit]:
    with Session(db.engine) as session:
        return list(session.exec(select(Unit).order_by(Unit.id)).scalars())


def units_by_name(db: Database) -> dict[str, Unit]:
    return {u.name: u for u in units(db)}


def jurisdictions(db: Database) -> dict[str, Jurisdiction]:
    with Session(db.engine) as session:
        return {j.id: j for j in session.exec(select(Jurisdiction)).scalars()}


def write(path: Path, lines: list[str], encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def at_line(exc: InvalidInput, path: Path, line: int) -> list[Problem]:
    """The problems located on ``path:line`` (``path:line`` itself or ``path:line.field``)."""
    here = f"{path}:{line}"
    return [p for p in exc.problems if p.where == here or p.where.startswith(here + ".")]


def lines_named(exc: InvalidInput, path: Path) -> set[int]:
    out = set()
    for p in exc.problems:
        assert p.where.startswith(f"{path}:"), f"problem not located in {path}: {p}"
        rest = p.where[len(f"{path}:"):]
        out.add(int(rest.split(".", 1)[0]))
    return out


def shanxi_roster_lines() -> list[str]:
    """The shipped roster with a contact person added on the first unit (exercises the contact columns)."""
    lines = UNITS_CSV.read_text("utf-8").splitlines()
    assert lines[0] == CN_HEADER
    assert lines[1] == "1,省纪委监委机关,shanxi,provincial,监察机关,,,,"
    lines[1] = "1,省纪委监委机关,shanxi,provincial,监察机关,张伟,办公室主任,0351-4567890,zhang.wei@example.cn"
    return lines


def snapshot(db: Database) -> list[tuple[Any, ...]]:
    return [(u.name, u.jurisdiction_id, u.level, u.category, u.contacts) for u in units(db)]


# ---------------------------------------------------------------- the shipped examples
def test_example_jurisdictions_import_as_a_tree(db: Database) -> None:
    result = import_jurisdictions(db, JURISDICTIONS_CSV, actor=OPERATOR, now=OPERATOR_NOW)
    assert result == ImportResult(created=27, updated=0, unchanged=0)
    js = jurisdictions(db)
    assert len(js) == 27
    provinces = {j.id for j in js.values() if j.level == "province"}
    assert provinces == {"shanxi", "hunan"}
    assert len([j for j in js.values() if j.level == "city"]) == 25
    for j in js.values():
        if j.level == "province":
            assert j.parent_id is None
            assert j.path == f"/{j.id}/"
        else:
            parent = js[j.parent_id]
            assert parent.level == "province"
            assert j.path == parent.path + j.id + "/"
    assert js["shanxi-taiyuan"].path == "/shanxi/shanxi-taiyuan/"
    assert js["shanxi-taiyuan"].name == "太原市"
    assert js["hunan-xiangxi"].name == "湘西土家族苗族自治州"
    assert js["hunan-xiangxi"].parent_id == "hunan"
    assert sum(1 for j in js.values() if j.parent_id == "shanxi") == 11
    assert sum(1 for j in js.values() if j.parent_id == "hunan") == 14

    # importing the same file again changes nothing
    assert import_jurisdictions(db, JURISDICTIONS_CSV, actor=OPERATOR, now=OPERATOR_NOW) == ImportResult(created=0, updated=0, unchanged=27)
    assert count(db, Jurisdiction) == 27


def test_example_shanxi_units_import_with_their_categories(db: Database, clock) -> None:
    seed_jurisdictions(db)
    result = import_units(db, UNITS_CSV, clock.now(), actor=OPERATOR)
    assert result == ImportResult(created=35, updated=0, unchanged=0)
    by_name = units_by_name(db)
    assert len(by_name) == 35
    assert {u.jurisdiction_id for u in by_name.values()} == {"shanxi"}
    assert {u.level for u in by_name.values()} == {"provincial"}
    assert {u.category for u in by_name.values()} <= set(CATEGORIES)
    assert all(u.contacts == [] for u in by_name.values())
    expected = {
        "省纪委监委机关": "监察机关",
        "省人大常委会机关": "人大机关",
        "省政协机关": "政协机关",
        "省委组织部": "党的机关",
        "省直属机关工委": "党的机关",
        "省科学技术厅": "行政机关",
        "省药品监督管理局": "行政机关",
        "省总工会": "人民团体",
        "共青团山西省委": "人民团体",
        "省招生考试管理中心": "参公事业单位",
        "省社会科学界联合会": "人民团体",
    }
    for name, category in expected.items():
        assert by_name[name].category == category, name
    tally: dict[str, int] = {}
    for u in by_name.values():
        tally[u.category] = tally.get(u.category, 0) + 1
    assert tally == {"监察机关": 1, "人大机关": 1, "政协机关": 1, "党的机关": 7, "行政机关": 14,
                     "人民团体": 10, "参公事业单位": 1}
    # units come in the order of the file
    assert [u.name for u in units(db)][:4] == ["省纪委监委机关", "省人大常委会机关", "省政协机关", "省委组织部"]


# ---------------------------------------------------------------- encodings and layouts
VARIANTS = {
    "utf8": lambda lines: "\n".join(lines).encode("utf-8") + b"\n",
    "gbk": lambda lines: ("\n".join(lines) + "\n").encode("gbk"),
    "utf8-bom": lambda lines: b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode("utf-8"),
    "crlf": lambda lines: ("\r\n".join(lines) + "\r\n").encode("utf-8"),
    "gbk-crlf-no-final-newline": lambda lines: "\r\n".join(lines).encode("gbk"),
    "blank-lines": lambda lines: "\n".join(
        [lines[0], ""] + [x for i, line in enumerate(lines[1:]) for x in ((line, "", ",,,,,,,,") if i % 5 == 0 else (line,))]
        + ["", "   ", ""]).encode("utf-8"),
    "english-header": lambda lines: "\n".join([EN_HEADER] + lines[1:]).encode("utf-8") + b"\n",
}


@pytest.fixture(scope="module")
def reference_snapshot(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> list[tuple[Any, ...]]:
    """What the plain UTF-8 roster imports to (computed once, on a SQLite copy)."""
    path = tmp_path_factory.mktemp("reference") / "ref.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        ref = Database(engine)
        seed_jurisdictions(ref)
        csv = path.parent / "roster.csv"
        csv.write_bytes(VARIANTS["utf8"](shanxi_roster_lines()))
        import_units(ref, csv, ManualClock(datetime(2021, 6, 1, 1, 0, tzinfo=UTC)).now(), actor=OPERATOR)
        return snapshot(ref)
    finally:
        engine.dispose()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_roster_variants_import_identically(db: Database, clock, tmp_path: Path, variant: str,
                                            reference_snapshot: list[tuple[Any, ...]]) -> None:
    seed_jurisdictions(db)
    path = tmp_path / f"roster-{variant}.csv"
    path.write_bytes(VARIANTS[variant](shanxi_roster_lines()))
    assert import_units(db, path, clock.now(), actor=OPERATOR) == ImportResult(created=35, updated=0, unchanged=0)
    got = snapshot(db)
    assert got == reference_snapshot
    assert len(got) == 35
    first = got[0]
    assert first[0] == "省纪委监委机关"
    assert first[4] == [{"name": "张伟", "position": "办公室主任", "phone": "0351-4567890",
                         "email": "zhang.wei@example.cn"}]


def test_gbk_file_is_really_not_utf8(tmp_path: Path) -> None:
    """Guard for the variant test: the GBK bytes must not happen to be valid UTF-8."""
    data = VARIANTS["gbk"](shanxi_roster_lines())
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


# ---------------------------------------------------------------- bad rows: one problem each
GOOD_1 = "省委组织部,shanxi,,党的机关,,"
GOOD_2 = "太原市机关事务管理局,shanxi-taiyuan,city,行政机关,李娜,0351-1234567"
HEADER = "name,jurisdiction,level,category,contact_name,contact_phone"

# (case id, lines of the file, {line: words the problem on that line must contain})
BAD_FILES = [
    ("unknown-category",
     [HEADER, GOOD_1, "省委宣传部,shanxi,,宣传机关,,", GOOD_2],
     {3: ["category", "宣传机关"]}),
    ("unknown-jurisdiction",
     [HEADER, GOOD_1, GOOD_2, "某某局,shanxi-nowhere,,行政机关,,"],
     {4: ["jurisdiction", "shanxi-nowhere"]}),
    ("missing-name",
     [HEADER, GOOD_1, ",shanxi,,行政机关,,", GOOD_2],
     {3: ["name", "required"]}),
    ("bad-email",
     ["name,jurisdiction,category,contact_name,contact_email", "省委组织部,shanxi,党的机关,王强,wang.at.example.cn",
      "省民政厅,shanxi,行政机关,赵敏,zhao@example.cn"],
     {2: ["email", "wang.at.example.cn"]}),
    ("level-contradicts-jurisdiction",
     [HEADER, GOOD_1, "太原市审计局,shanxi-taiyuan,provincial,行政机关,,", GOOD_2],
     {3: ["level", "provincial", "shanxi-taiyuan"]}),
    ("level-contradicts-jurisdiction-chinese",
     [HEADER, "省审计厅,shanxi,市级,行政机关,,", GOOD_2],
     {2: ["level", "city", "shanxi"]}),
    ("extra-cells",
     [HEADER, GOOD_1, "省民政厅,shanxi,,行政机关,,,多余的格子", GOOD_2],
     {3: ["7 cells", "6"]}),
    ("unknown-column",
     ["name,jurisdiction,category,remarks", "省委组织部,shanxi,党的机关,"],
     {1: ["unknown column", "remarks"]}),
    ("missing-required-column",
     ["name,jurisdiction,contact_name", "省委组织部,shanxi,王强"],
     {1: ["missing column", "category"]}),
    ("empty-file", [], {1: ["empty"]}),
    ("blank-lines-counted",
     [HEADER, "", GOOD_1, ",,,,,", "", "省委宣传部,shanxi,,宣传机关,,", "", GOOD_2],
     {6: ["category", "宣传机关"]}),
]


@pytest.mark.parametrize("lines,expect", [pytest.param(lines, expect, id=case) for case, lines, expect in BAD_FILES])
def test_bad_roster_is_refused_whole(db: Database, clock, tmp_path: Path, lines: list[str],
                                     expect: dict[int, list[str]]) -> None:
    seed_jurisdictions(db)
    path = tmp_path / "roster.csv"
    if lines:
        write(path, lines)
    else:
        path.write_bytes(b"")
    assert count(db, Unit) == 0
    with pytest.raises(InvalidInput) as info:
        import_units(db, path, clock.now(), actor=OPERATOR)
    exc = info.value
    assert exc.code == "invalid_input"
    assert lines_named(exc, path) == set(expect), exc.problems
    for line, words in expect.items():
        found = at_line(exc, path, line)
        assert found, f"nothing on line {line}: {exc.problems}"
        text = " ".join(str(p) for p in found)
        for word in words:
            assert word in text, f"{word!r} not in {text!r}"
    assert str(path) in str(exc)
    assert count(db, Unit) == 0, "nothing may be written, not even the good rows"


def test_empty_bom_only_file_is_an_empty_file(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(InvalidInput) as info:
        import_units(db, path, clock.now(), actor=OPERATOR)
    assert [p.where for p in info.value.problems] == [f"{path}:1"]
    assert "empty" in info.value.problems[0].what
    assert count(db, Unit) == 0


def test_duplicate_unit_in_file_names_both_lines(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    path = write(tmp_path / "dup.csv", [HEADER, GOOD_1, GOOD_2, "", "省委组织部,shanxi,,党的机关,,"])
    with pytest.raises(InvalidInput) as info:
        import_units(db, path, clock.now(), actor=OPERATOR)
    exc = info.value
    assert lines_named(exc, path) == {5}
    text = str(at_line(exc, path, 5)[0])
    assert "省委组织部" in text and "line 2" in text
    assert count(db, Unit) == 0

    # the same name in another jurisdiction is another unit, not a duplicate
    ok = write(tmp_path / "ok.csv", [HEADER, GOOD_1, "省委组织部,shanxi-taiyuan,,党的机关,,"])
    assert import_units(db, ok, clock.now(), actor=OPERATOR) == ImportResult(created=2, updated=0, unchanged=0)


def test_every_problem_of_a_file_is_reported_at_once(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    lines = [
        "序号,单位名称,所属地区,层级,类别,联系人,职务,联系方式,电子邮箱",  # 1
        "1,省委组织部,shanxi,省级,党的机关,王强,处长,0351-1111111,wang@example.cn",  # 2 good
        "",  # 3
        "2,省委宣传部,shanxi,省级,宣传机关,,,,",  # 4 bad category
        "3,省民政厅,shanxi-atlantis,,行政机关,,,,",  # 5 unknown jurisdiction
        "4,,shanxi,,行政机关,,,,",  # 6 no name
        "5,省审计厅,shanxi,,行政机关,赵敏,,,zhao(at)example.cn",  # 7 bad email
        "6,太原市审计局,shanxi-taiyuan,省级,行政机关,,,,",  # 8 level vs jurisdiction
        "7,省委组织部,shanxi,,党的机关,,,,",  # 9 duplicate of line 2
        "9,省信访局,shanxi,,行政机关,,,,",  # 10 good
    ]
    path = write(tmp_path / "many.csv", lines, encoding="gbk")
    with pytest.raises(InvalidInput) as info:
        import_units(db, path, clock.now(), actor=OPERATOR)
    exc = info.value
    assert lines_named(exc, path) == {4, 5, 6, 7, 8, 9}
    assert "line 2" in str(at_line(exc, path, 9)[0])
    assert "email" in at_line(exc, path, 7)[0].where
    assert count(db, Unit) == 0


def test_extra_cells_do_not_hide_the_other_problems(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    path = write(tmp_path / "mixed.csv", [
        HEADER,  # 1
        "省委宣传部,shanxi,,宣传机关,,",  # 2 bad category
        "省民政厅,shanxi,,行政机关,,,多余的格子",  # 3 extra cells
        GOOD_2,  # 4
    ])
    with pytest.raises(InvalidInput) as info:
        import_units(db, path, clock.now(), actor=OPERATOR)
    assert lines_named(info.value, path) == {2, 3}


def test_a_bad_row_in_the_shipped_roster_blocks_the_whole_roster(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    lines = shanxi_roster_lines()
    lines[20] = lines[20].replace("行政机关", "行政单位")  # line 21 of the file
    path = write(tmp_path / "roster.csv", lines)
    with pytest.raises(InvalidInput) as info:
        import_units(db, path, clock.now(), actor=OPERATOR)
    assert lines_named(info.value, path) == {21}
    assert "行政单位" in str(at_line(info.value, path, 21)[0])
    assert count(db, Unit) == 0


def test_multiline_record_is_named_by_its_first_line(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    path = write(tmp_path / "multi.csv", [HEADER, '"省委宣传部', '（新闻出版局）",shanxi,,宣传机关,,', GOOD_2])
    with pytest.raises(InvalidInput) as info:
        import_units(db, path, clock.now(), actor=OPERATOR)
    assert lines_named(info.value, path) == {2}


# ---------------------------------------------------------------- re-import and update
def test_reimport_of_existing_unit_without_update_is_refused(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    first = write(tmp_path / "first.csv", [HEADER, GOOD_1, GOOD_2])
    assert import_units(db, first, clock.now(), actor=OPERATOR) == ImportResult(created=2, updated=0, unchanged=0)
    existing = units_by_name(db)["太原市机关事务管理局"]
    before = snapshot(db)

    again = write(tmp_path / "again.csv", [HEADER, "省民政厅,shanxi,,行政机关,,", "",
                                           "太原市机关事务管理局,shanxi-taiyuan,,行政机关,刘洋,0351-7654321"])
    with pytest.raises(InvalidInput) as info:
        import_units(db, again, clock.now(), actor=OPERATOR)
    exc = info.value
    assert lines_named(exc, again) == {4}
    text = str(at_line(exc, again, 4)[0])
    assert "太原市机关事务管理局" in text
    assert f"unit {existing.id}" in text
    assert "update" in text
    assert count(db, Unit) == 2, "the new unit on line 2 must not be written either"
    assert snapshot(db) == before


def test_reimport_with_update_replaces_category_and_contacts(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    first = write(tmp_path / "first.csv", [
        "name,jurisdiction,category,contact_name,contact_position,contact_phone,contact_email",
        "省委组织部,shanxi,党的机关,王强,处长,0351-1111111,",
        "省民政厅,shanxi,行政机关,赵敏,,,zhao@example.cn",
        "太原市机关事务管理局,shanxi-taiyuan,行政机关,,,,",
    ])
    assert import_units(db, first, clock.now(), actor=OPERATOR) == ImportResult(created=3, updated=0, unchanged=0)
    ids = {u.name: u.id for u in units(db)}

    later = clock.now()
    second = write(tmp_path / "second.csv", [
        "单位名称,所属地区,类别,联系人,职务,联系电话,电子邮箱",
        "省委组织部,shanxi,党的机关,孙丽,副处长,,sun@example.cn",  # contacts replaced
        "省民政厅,shanxi,行政机关,赵敏,,,zhao@example.cn",  # unchanged
        "太原市机关事务管理局,shanxi-taiyuan,参公事业单位,,,,",  # category changed
        "省信访局,shanxi,行政机关,,,,",  # new
    ], encoding="gbk")
    assert import_units(db, second, later, update=True, actor=OPERATOR) == ImportResult(created=1, updated=2, unchanged=1)
    by_name = units_by_name(db)
    assert len(by_name) == 4
    assert {n: by_name[n].id for n in ids} == ids, "updated units keep their ids"
    assert by_name["省委组织部"].contacts == [{"name": "孙丽", "position": "副处长", "phone": "",
                                               "email": "sun@example.cn"}]
    assert by_name["省委组织部"].category == "党的机关"
    assert by_name["省民政厅"].contacts == [{"name": "赵敏", "position": "", "phone": "", "email": "zhao@example.cn"}]
    assert by_name["太原市机关事务管理局"].category == "参公事业单位"
    assert by_name["太原市机关事务管理局"].level == "city"
    assert by_name["省信访局"].category == "行政机关"

    # the same file again: all unchanged
    assert import_units(db, second, later, update=True, actor=OPERATOR) == ImportResult(created=0, updated=0, unchanged=4)

    # dropping a contact is an update too
    third = write(tmp_path / "third.csv", ["name,jurisdiction,category", "省委组织部,shanxi,党的机关"])
    assert import_units(db, third, later, update=True, actor=OPERATOR) == ImportResult(created=0, updated=1, unchanged=0)
    assert units_by_name(db)["省委组织部"].contacts == []


def test_update_with_a_bad_row_writes_nothing(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    import_units(db, UNITS_CSV, clock.now(), actor=OPERATOR)
    before = snapshot(db)
    lines = UNITS_CSV.read_text("utf-8").splitlines()
    lines[4] = lines[4].replace("党的机关", "人民团体")  # a valid change on line 5
    lines.append("36,省新设局,shanxi,provincial,行政机关,,,,")  # a new unit on line 37
    lines.append("37,省某某局,shanxi,provincial,行政机关,联系人甲,,,")  # line 38: contact without phone/email
    path = write(tmp_path / "update.csv", lines)
    with pytest.raises(InvalidInput) as info:
        import_units(db, path, clock.now(), update=True, actor=OPERATOR)
    assert lines_named(info.value, path) == {38}
    assert snapshot(db) == before
    assert count(db, Unit) == 35


# ---------------------------------------------------------------- jurisdictions
JHEADER = "id,name,level,parent"
BAD_JURISDICTIONS = [
    ("city-with-unknown-parent",
     [JHEADER, "jiangsu,江苏省,province,", "jiangsu-nanjing,南京市,city,jiangsu", "zhejiang-hangzhou,杭州市,city,zhejiang"],
     {4: ["parent", "zhejiang"]}),
    ("county-under-province",
     [JHEADER, "jiangsu,江苏省,province,", "jiangsu-jiangning,江宁区,county,jiangsu"],
     {3: ["parent", "city", "jiangsu", "province"]}),
    ("county-under-existing-province",
     [JHEADER, "shanxi-qingxu,清徐县,county,shanxi"],
     {2: ["parent", "city", "shanxi"]}),
    ("province-with-parent",
     # line 3 is fine in itself (its parent is in the file); only the root cause is named
     [JHEADER, "jiangsu,江苏省,province,shanxi", "jiangsu-nanjing,南京市,city,jiangsu"],
     {2: ["parent", "province"]}),
    ("uppercase-id",
     [JHEADER, "Jiangsu,江苏省,province,"],
     {2: ["id", "Jiangsu"]}),
    ("id-with-space",
     [JHEADER, "jiangsu,江苏省,province,", "jiangsu nanjing,南京市,city,jiangsu"],
     {3: ["id", "jiangsu nanjing"]}),
    ("duplicate-id",
     [JHEADER, "jiangsu,江苏省,province,", "", "jiangsu-nanjing,南京市,city,jiangsu",
      "jiangsu-nanjing,南京,city,jiangsu"],
     {5: ["jiangsu-nanjing", "line 4"]}),
    ("bad-level",
     [JHEADER, "jiangsu,江苏省,state,"],
     {2: ["level", "state"]}),
    ("moving-an-existing-jurisdiction",
     [JHEADER, "jiangsu,江苏省,province,", "shanxi-taiyuan,太原市,city,jiangsu"],
     {3: ["shanxi-taiyuan"]}),
    ("unknown-column",
     ["id,name,level,parent,population", "jiangsu,江苏省,province,,85000000"],
     {1: ["population"]}),
    ("empty-file", [], {1: ["empty"]}),
]


@pytest.mark.parametrize("lines,expect",
                         [pytest.param(lines, expect, id=case) for case, lines, expect in BAD_JURISDICTIONS])
def test_bad_jurisdictions_are_refused_whole(db: Database, tmp_path: Path, lines: list[str],
                                             expect: dict[int, list[str]]) -> None:
    seed_jurisdictions(db)
    before = {j.id: (j.name, j.level, j.parent_id, j.path) for j in jurisdictions(db).values()}
    path = tmp_path / "jurisdictions.csv"
    if lines:
        write(path, lines)
    else:
        path.write_bytes(b"")
    with pytest.raises(InvalidInput) as info:
        import_jurisdictions(db, path, actor=OPERATOR, now=OPERATOR_NOW)
    exc = info.value
    assert lines_named(exc, path) == set(expect), exc.problems
    for line, words in expect.items():
        text = " ".join(str(p) for p in at_line(exc, path, line))
        for word in words:
            assert word in text, f"{word!r} not in {text!r}"
    after = {j.id: (j.name, j.level, j.parent_id, j.path) for j in jurisdictions(db).values()}
    assert after == before, "nothing may be written (the good rows of the file included)"


def test_jurisdictions_three_levels_and_renames(db: Database, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    path = write(tmp_path / "j.csv", [
        "代码,名称,层级,上级",
        "shanxi-taiyuan-qingxu,清徐县,县,shanxi-taiyuan",
        "jiangsu,江苏省,省,",
        "jiangsu-nanjing,南京市,市,jiangsu",
        "jiangsu-nanjing-jiangning,江宁区,区,jiangsu-nanjing",
        "shanxi-taiyuan,太原市（省会）,city,shanxi",
    ], encoding="gbk")
    assert import_jurisdictions(db, path, actor=OPERATOR, now=OPERATOR_NOW) == ImportResult(created=4, updated=1, unchanged=0)
    js = jurisdictions(db)
    assert js["jiangsu-nanjing-jiangning"].path == "/jiangsu/jiangsu-nanjing/jiangsu-nanjing-jiangning/"
    assert js["jiangsu-nanjing-jiangning"].level == "county"
    assert js["shanxi-taiyuan-qingxu"].path == "/shanxi/shanxi-taiyuan/shanxi-taiyuan-qingxu/"
    assert js["shanxi-taiyuan"].name == "太原市（省会）"
    assert js["shanxi-taiyuan"].path == "/shanxi/shanxi-taiyuan/"
    assert count(db, Jurisdiction) == 31


def test_unit_level_follows_a_county_jurisdiction(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    write(tmp_path / "j.csv", [JHEADER, "shanxi-taiyuan-qingxu,清徐县,county,shanxi-taiyuan"])
    import_jurisdictions(db, tmp_path / "j.csv", actor=OPERATOR, now=OPERATOR_NOW)
    path = write(tmp_path / "u.csv", [HEADER, "清徐县机关事务中心,shanxi-taiyuan-qingxu,县级,参公事业单位,,",
                                      "清徐县发改局,shanxi-taiyuan-qingxu,,行政机关,,",
                                      "清徐县审计局,shanxi-taiyuan-qingxu,city,行政机关,,"])
    with pytest.raises(InvalidInput) as info:
        import_units(db, path, clock.now(), actor=OPERATOR)
    assert lines_named(info.value, path) == {4}
    assert count(db, Unit) == 0
    write(path, [HEADER, "清徐县机关事务中心,shanxi-taiyuan-qingxu,县级,参公事业单位,,",
                 "清徐县发改局,shanxi-taiyuan-qingxu,,行政机关,,"])
    assert import_units(db, path, clock.now(), actor=OPERATOR).created == 2
    assert {u.level for u in units(db)} == {"county"}


def test_a_parent_may_come_later_in_the_file(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "j.csv"
    path.write_text("id,name,level,parent\nhenan-zhengzhou,郑州市,city,henan\nhenan-zhengzhou-jinshui,金水区,county,"
                    "henan-zhengzhou\nhenan,河南省,province,\n", encoding="utf-8")
    assert import_jurisdictions(db, path, actor=OPERATOR, now=OPERATOR_NOW) == ImportResult(created=3, updated=0, unchanged=0)
    with db.engine.connect() as conn:
        paths = dict(conn.execute(select(Jurisdiction.id, Jurisdiction.path)).all())
    assert paths["henan-zhengzhou-jinshui"] == "/henan/henan-zhengzhou/henan-zhengzhou-jinshui/"


def test_blank_lines_before_the_header_are_skipped(db: Database, clock, tmp_path: Path) -> None:
    seed_jurisdictions(db)
    path = tmp_path / "u.csv"
    path.write_text("\n\nname,jurisdiction,category\n省委组织部,shanxi,党的机关\n,,\n省委编办,shanxi,党的机关,\n",
                    encoding="utf-8")
    assert import_units(db, path, clock.now(), actor=OPERATOR).created == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("\n名称错,jurisdiction,category\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as info:
        import_units(db, bad, clock.now(), actor=OPERATOR)
    assert {p.where for p in info.value.problems} == {f"{bad}:2"}
