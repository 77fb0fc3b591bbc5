"""The shipped rubric files reproduce the printed tables; the loader refuses bad rubrics."""
from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflow.adapters.rubric_files import DEFAULT_RUBRIC_DIR, RubricCatalog, load_rubric
from workflow.domain.errors import InvalidInput, NotFound
from workflow.domain.rubric import Rubric, dumps_json, rubric_from_dict

# Printed in the documents (not computed from the files):
# section code -> (name, points, [(item code, item name, points, number of criteria printed)])
SHANXI = {
    "1": ("强化目标管理", 9, [("1.1", "节约能源资源管理", 9, 1)]),
    "2": ("完善制度体系", 27, [("2.1", "管理机构", 5, 4), ("2.2", "管理制度", 22, 10)]),
    "3": ("推行绿色办公", 25, [("3.1", "行为节约", 9, 5), ("3.2", "绿色采购", 6, 2),
                               ("3.3", "绿色出行", 6, 2), ("3.4", "绿色食堂", 4, 2)]),
    "4": ("实行生活垃圾分类", 22, [("4.1", "源头减量", 8, 4), ("4.2", "分类投放", 6, 3), ("4.3", "分类收运", 8, 4)]),
    "5": ("开展宣传教育", 17, [("5.1", "宣传实践", 10, 3), ("5.2", "教育培训", 7, 2)]),
}
HUNAN = {
    "1": ("强化目标管理", 10, [("1.1", "节约能源资源目标管理", 10, 1)]),
    "2": ("完善制度机制", 28, [("2.1", "管理机构", 8, 2), ("2.2", "管理制度", 20, 5)]),
    "3": ("推行绿色办公", 21, [("3.1", "行为节约", 10, 5), ("3.2", "绿色采购", 6, 2), ("3.3", "绿色出行", 5, 2)]),
    "4": ("实行生活垃圾分类", 24, [("4.1", "源头减量", 10, 3), ("4.2", "分类投放", 6, 3), ("4.3", "分类收运", 8, 4)]),
    "5": ("开展宣传教育", 17, [("5.1", "宣传实践", 11, 3), ("5.2", "教育培训", 6, 2)]),
}
# code -> (points per occurrence, cap), as printed ("每项得1分，最高得5分" ...)
SHANXI_PER_OCCURRENCE = {"2.2.2": (1, 5), "5.1.1": (2, 4), "5.1.2": (1, 4), "5.1.3": (1, 2), "5.2.2": (2, 4)}
HUNAN_PER_OCCURRENCE = {"2.2.5": (1, 4), "5.1.1": (2, 4), "5.1.2": (2, 4)}


@pytest.fixture(scope="module")
def catalog() -> RubricCatalog:
    return RubricCatalog()


@pytest.mark.parametrize(("rubric_id", "printed"), [("shanxi-2020", SHANXI), ("hunan-2020", HUNAN)])
def test_shipped_rubric_reproduces_every_printed_subtotal(catalog: RubricCatalog, rubric_id: str, printed: dict) -> None:
    rubric = catalog.get(rubric_id)
    assert rubric.total == Decimal(100)
    assert rubric.pass_mark == Decimal(80)
    got = {
        s.code: (s.name, s.max_points, [(i.code, i.name, i.max_points, len(i.criteria)) for i in s.items])
        for s in rubric.sections
    }
    assert got == printed
    for section in rubric.sections:
        for item in section.items:
            assert sum(c.cap for c in item.criteria) == item.max_points


@pytest.mark.parametrize(("rubric_id", "expected"), [("shanxi-2020", SHANXI_PER_OCCURRENCE), ("hunan-2020", HUNAN_PER_OCCURRENCE)])
def test_per_occurrence_criteria_are_exactly_the_printed_ones(catalog: RubricCatalog, rubric_id: str, expected: dict) -> None:
    rubric = catalog.get(rubric_id)
    got = {c.code: (c.points, c.cap) for c in rubric.criteria() if c.per_occurrence}
    assert got == expected
    for c in rubric.criteria():
        if not c.per_occurrence:
            assert c.points == c.cap


def test_shipped_numbers_are_decimals_never_floats(catalog: RubricCatalog) -> None:
    for rubric in catalog.all():
        for c in rubric.criteria():
            assert type(c.points) is Decimal and type(c.cap) is Decimal and type(c.step) is Decimal
            # Hunan 1.1.1 "…的，得10分，没完成的，不得分" is all or nothing; every other line in halves
            assert c.step == (Decimal(10) if (rubric.id, c.code) == ("hunan-2020", "1.1.1") else Decimal("0.5"))


def test_hunan_half_points(catalog: RubricCatalog) -> None:
    hunan = catalog.get("hunan-2020")
    caps = {c.code: c.cap for c in hunan.criteria()}
    assert [caps["3.1.3"], caps["3.1.4"]] == [Decimal("1.5"), Decimal("1.5")]  # 自然采光 / 空调温度
    assert [caps["3.3.1"], caps["3.3.2"]] == [Decimal("2.5"), Decimal("2.5")]  # 绿色出行
    assert [caps["4.1.2"], caps["4.1.3"]] == [Decimal("3.5"), Decimal("3.5")]  # 源头减量
    assert str(hunan.criterion("3.1.3").points) == "1.5"


def test_hunan_items_keep_their_requirement_shanxi_has_none(catalog: RubricCatalog) -> None:
    hunan = catalog.get("hunan-2020")
    assert all(item.requirement for item in hunan.items())
    assert hunan.items()[0].requirement == "完成能源资源消耗量化指标"
    assert hunan.criterion("1.1.1").text == "创建单位完成省机关事务管理局下达的年度能源资源消耗量化指标的，得10分，没完成的，不得分。"
    assert all(item.requirement is None for item in catalog.get("shanxi-2020").items())


def test_shanxi_labels_keep_printed_sub_numbers(catalog: RubricCatalog) -> None:
    shanxi = catalog.get("shanxi-2020")
    item = shanxi.items()[2]
    assert item.name == "管理制度"
    assert [c.label for c in item.criteria] == ["1.1", "1.2", "2", "3", "4.1", "4.2", "5.1", "5.2", "5.3", "5.4"]
    assert [c.code for c in item.criteria][:3] == ["2.2.1.1", "2.2.1.2", "2.2.2"]
    assert shanxi.criterion("2.2.5.4").text == "定期公示能源资源消费状况，得1分。"
    assert shanxi.criterion("1.1.1").label is None and shanxi.criterion("1.1.1").cap == 9
    assert [c.code for c in shanxi.criteria()][:2] == ["1.1.1", "2.1.1"]
    assert len(shanxi.criteria()) == 42


def test_criterion_lookup_unknown_code(catalog: RubricCatalog) -> None:
    with pytest.raises(NotFound, match="9.9.9"):
        catalog.get("hunan-2020").criterion("9.9.9")


def test_catalog_get_unknown_names_known_ids(catalog: RubricCatalog) -> None:
    assert [r.id for r in catalog.all()] == ["hunan-2020", "shanxi-2020"]
    with pytest.raises(NotFound) as err:
        catalog.get("guangdong-2020")
    assert "hunan-2020" in str(err.value) and "shanxi-2020" in str(err.value)
    assert err.value.details["known"] == ["hunan-2020", "shanxi-2020"]


def test_default_directory_is_repository_rubrics() -> None:
    assert Path(__file__).resolve().parents[2] / "rubrics" == DEFAULT_RUBRIC_DIR


def test_to_json_dict_shape_and_exact_numbers(catalog: RubricCatalog) -> None:
    data = catalog.get("hunan-2020").to_json_dict()
    assert list(data) == ["id", "title", "total", "pass_mark", "sections"]
    section = data["sections"][2]
    assert list(section) == ["code", "name", "max_points", "items"]
    item = section["items"][0]
    assert list(item) == ["code", "name", "max_points", "criteria"]
    crit = item["criteria"][2]
    assert list(crit) == ["code", "text", "points", "cap", "per_occurrence", "must_pass", "allowed"]
    assert crit["allowed"] == [0, Decimal("0.5"), 1, Decimal("1.5")]
    assert type(data["total"]) is int and type(item["max_points"]) is int
    assert crit["points"] == Decimal("1.5") and type(crit["points"]) is Decimal
    text = dumps_json(data)
    assert '"points": 1.5' in text and '"total": 100' in text
    back = json.loads(text, parse_float=Decimal)
    assert back["sections"][2]["items"][0]["criteria"][2]["cap"] == Decimal("1.5")
    assert json.loads(dumps_json(data, indent=2), parse_float=Decimal) == back


def test_dumps_json_refuses_float() -> None:
    with pytest.raises(TypeError):
        dumps_json({"x": 0.1})
    assert dumps_json([Decimal("0.1"), Decimal("2.50"), "节约"]) == '[0.1, 2.50, "节约"]'


# --------------------------------------------------------------------------- bad rubrics


def small_rubric() -> dict[str, Any]:
    return {
        "id": "test-1",
        "title": "t",
        "province": "test",
        "total": 10,
        "pass_mark": 8,
        "sections": [
            {"code": "1", "name": "s1", "max_points": 4, "items": [
                {"code": "1.1", "name": "i1", "max_points": 4, "criteria": [
                    {"code": "1.1.1", "text": "a", "points": 1, "cap": 4, "per_occurrence": True},
                ]},
            ]},
            {"code": "2", "name": "s2", "max_points": 6, "items": [
                {"code": "2.1", "name": "i2", "max_points": 6, "criteria": [
                    {"code": "2.1.1", "text": "b", "points": "2.5", "cap": "2.5", "per_occurrence": False},
                    {"code": "2.1.2", "text": "c", "points": "3.5", "cap": "3.5", "per_occurrence": False},
                ]},
            ]},
        ],
    }


def problems_of(data: Any) -> dict[str, str]:
    with pytest.raises(InvalidInput) as err:
        rubric_from_dict(data, "t.yaml")
    return {p.where: p.what for p in err.value.problems}


def test_small_rubric_is_valid() -> None:
    rubric = rubric_from_dict(small_rubric(), "t.yaml")
    assert isinstance(rubric, Rubric) and rubric.step == Decimal("0.5")
    assert rubric.criterion("2.1.1").cap == Decimal("2.5")


def test_caps_not_adding_up_names_path_and_numbers() -> None:
    data = small_rubric()
    data["sections"][1]["items"][0]["criteria"][1].update(points=3, cap=3)
    problems = problems_of(data)
    assert problems["t.yaml: sections[1].items[0].max_points"] == "criteria caps sum to 5.5, item says 6"


def test_items_and_sections_not_adding_up() -> None:
    data = small_rubric()
    data["sections"][0]["max_points"] = 5
    problems = problems_of(data)
    assert problems["t.yaml: sections[0].max_points"] == "item max_points sum to 4, section says 5"
    assert problems["t.yaml: total"] == "section max_points sum to 11, total says 10"


def test_duplicate_code_anywhere() -> None:
    data = small_rubric()
    data["sections"][1]["items"][0]["criteria"][1]["code"] = "2.1.1"
    problems = problems_of(data)
    what = problems["t.yaml: sections[1].items[0].criteria[1].code"]
    assert "duplicate code '2.1.1'" in what and "sections[1].items[0].criteria[0].code" in what


def test_missing_and_unknown_fields() -> None:
    data = small_rubric()
    del data["sections"][1]["items"][0]["criteria"][0]["cap"]
    del data["title"]
    data["sections"][0]["colour"] = "red"
    problems = problems_of(data)
    assert problems["t.yaml: sections[1].items[0].criteria[0].cap"] == "missing field"
    assert problems["t.yaml: title"] == "missing field"
    assert problems["t.yaml: sections[0].colour"] == "unknown field"


@pytest.mark.parametrize(
    ("change", "where", "words"),
    [
        ({"points": -1}, "points", "got -1"),
        ({"points": "abc"}, "points", "'abc'"),
        ({"points": None}, "points", "None"),
        ({"points": True}, "points", "True"),
        ({"cap": "NaN"}, "cap", "NaN"),
        ({"cap": 3}, "cap", "cap 3 is not a multiple of points 2"),
        ({"points": 5, "cap": 4}, "cap", "cap 4 is below points per occurrence 5"),
        ({"per_occurrence": "yes"}, "per_occurrence", "'yes'"),
        ({"must_pass": 1}, "must_pass", "1"),
        ({"label": "7"}, "label", "label '7' does not match code '1.1.1'"),
        ({"code": "2.1.9"}, "code", "must start with '1.1.'"),
    ],
)
def test_bad_criterion_values(change: dict[str, Any], where: str, words: str) -> None:
    data = small_rubric()
    crit = data["sections"][0]["items"][0]["criteria"][0]
    crit.update(points=2, cap=4)
    crit.update(change)
    problems = problems_of(data)
    assert words in problems[f"t.yaml: sections[0].items[0].criteria[0].{where}"]


def test_ordinary_criterion_points_must_equal_cap_and_fit_the_step() -> None:
    data = small_rubric()
    crits = data["sections"][1]["items"][0]["criteria"]
    crits[0].update(points=2, cap="2.5")
    crits[1].update(points="3.5", cap="3.5", step=1)
    problems = problems_of(data)
    assert problems["t.yaml: sections[1].items[0].criteria[0].cap"] == "cap 2.5 differs from points 2 (not per_occurrence)"
    assert problems["t.yaml: sections[1].items[0].criteria[1].cap"] == "cap 3.5 is not a multiple of step 1"


def test_pass_mark_outside_range_and_every_problem_at_once() -> None:
    data = small_rubric()
    data["pass_mark"] = 11
    data["sections"][0]["items"] = []
    data["sections"][1]["items"][0]["criteria"][0]["points"] = "x"
    problems = problems_of(data)
    assert problems["t.yaml: pass_mark"] == "must be within 0..10, got 11"
    assert problems["t.yaml: sections[0].items"] == "must be a non-empty list"
    assert "t.yaml: sections[1].items[0].criteria[0].points" in problems
    data["pass_mark"] = -1
    assert problems_of(data)["t.yaml: pass_mark"] == "must be >= 0, got -1"


def test_not_a_mapping() -> None:
    assert problems_of(["x"]) == {"t.yaml": "must be a mapping, got list"}


def test_yaml_float_points_are_read_through_str() -> None:
    data = small_rubric()
    crits = data["sections"][1]["items"][0]["criteria"]
    crits[0].update(points=2.5, cap=2.5)
    assert rubric_from_dict(data, "t.yaml").criterion("2.1.1").cap == Decimal("2.5")


# --------------------------------------------------------------------------- files


def write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_load_rubric_from_file(tmp_path: Path) -> None:
    path = write(tmp_path / "test-1.yaml", small_rubric())
    assert load_rubric(path).id == "test-1"
    catalog = RubricCatalog(tmp_path)
    assert [r.id for r in catalog.all()] == ["test-1"]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\ntitle: [unclosed\nprovince: p\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        load_rubric(path)
    (problem,) = err.value.problems
    assert problem.where.startswith(f"{path}:") and problem.where.rsplit(":", 1)[1].isdigit()
    assert "YAML syntax error" in problem.what


def test_duplicate_yaml_key_is_refused_with_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("id: a\ntitle: t\nid: b\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        load_rubric(path)
    assert err.value.problems[0].where == f"{path}:3:1"
    assert "duplicate key 'id'" in err.value.problems[0].what


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        load_rubric(tmp_path / "nope.yaml")
    assert err.value.problems[0].where == str(tmp_path / "nope.yaml")


def test_validation_problems_name_the_file(tmp_path: Path) -> None:
    data = small_rubric()
    data["total"] = 12
    path = write(tmp_path / "test-1.yaml", data)
    with pytest.raises(InvalidInput) as err:
        load_rubric(path)
    assert [str(p) for p in err.value.problems] == [f"{path}: total: section max_points sum to 10, total says 12"]


def test_catalog_refuses_id_not_matching_file_name_and_reports_all_files(tmp_path: Path) -> None:
    write(tmp_path / "other.yaml", small_rubric())
    broken = copy.deepcopy(small_rubric())
    broken["id"] = "test-2"
    broken["pass_mark"] = 99
    write(tmp_path / "test-2.yaml", broken)
    with pytest.raises(InvalidInput) as err:
        RubricCatalog(tmp_path)
    wheres = [p.where for p in err.value.problems]
    assert f"{tmp_path / 'other.yaml'}: id" in wheres
    assert f"{tmp_path / 'test-2.yaml'}: pass_mark" in wheres


def test_catalog_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        RubricCatalog(tmp_path / "absent")
