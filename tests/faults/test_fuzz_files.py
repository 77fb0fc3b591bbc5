"""Bad input fuzzing beyond schemathesis: mutated rubric, calendar and scenario files, and
mutated rosters. Each is read correctly or refused with InvalidInput naming where; never
another exception (a stack trace for the user) and never a silent half-read."""
from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow.adapters.data_files import read_yaml
from workflow.adapters.rosters import read_units
from workflow.adapters.rubric_files import load_rubric
from workflow.config import REPO_ROOT
from workflow.domain.calendar import calendar_from_dict
from workflow.domain.errors import InvalidInput
from workflow.simulate import load_scenario

FILES = {
    "rubric": REPO_ROOT / "rubrics" / "shanxi-2020.yaml",
    "calendar": REPO_ROOT / "calendars" / "shanxi-2021.yaml",
    "scenario": REPO_ROOT / "examples" / "shanxi-2021.yaml",
}
NASTY = st.sampled_from(["", "~", "null", "-1", "1e400", "0.333", "[]", "{}", "'", "\"", "：", "\x00", "\t",
                         "2021-02-30", "true", "八十", "9" * 40, "{date: x}", "- - -", "&a", "*a", "!!python/object:os.system"])


@st.composite
def mutated(draw, text: str) -> str:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["delete", "duplicate", "value", "truncate", "indent"]))
        if how == "delete":
            del lines[i]
        elif how == "duplicate":
            lines.insert(i, lines[i])
        elif how == "value" and ":" in lines[i]:
            key, _, _ = lines[i].partition(":")
            lines[i] = f"{key}: {draw(NASTY)}"
        elif how == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
    return "\n".join(lines) + "\n"


def _check(kind: str, path: Path) -> None:
    try:
        if kind == "rubric":
            load_rubric(path)
        elif kind == "calendar":
            calendar_from_dict(read_yaml(path), str(path))
        else:
            load_scenario(path)
    except InvalidInput as exc:
        assert exc.problems, "an error names what is wrong"
        assert all(p.where and p.what for p in exc.problems)


def _fuzz(kind: str):
    source = FILES[kind]
    text = source.read_text(encoding="utf-8")

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(mutated(text))
    def run(tmp_path_factory, content: str) -> None:
        folder = tmp_path_factory.mktemp(kind)
        for extra in ("jurisdictions.csv", "shanxi-2021-units.csv"):  # what the example scenario names
            (folder / extra).write_bytes((REPO_ROOT / "examples" / extra).read_bytes())
        path = folder / source.name
        path.write_text(content, encoding="utf-8")
        _check(kind, path)

    return run


def test_mutated_rubrics(tmp_path_factory) -> None:
    _fuzz("rubric")(tmp_path_factory)


def test_mutated_calendars(tmp_path_factory) -> None:
    _fuzz("calendar")(tmp_path_factory)


def test_mutated_scenarios(tmp_path_factory) -> None:
    _fuzz("scenario")(tmp_path_factory)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["省财政厅", "shanxi", "行政机关", "", " ", "\ufeff", "\"", ",", "\r\n", "市",
                                          "city", "张三", "a@b.cn", "0351-1234567", "九"]), max_size=10), max_size=8),
       st.sampled_from(["utf-8", "utf-8-sig", "gbk"]))
def test_mutated_rosters(rows: list[list[str]], encoding: str) -> None:
    text = "\n".join(["单位名称,所属地区,类别,联系人,电子邮箱", *(",".join(r) for r in rows)]) + "\n"
    try:
        sheet = read_units(text.encode(encoding, errors="replace"), "名单.csv")
    except InvalidInput as exc:
        assert exc.problems and all(p.where.startswith("名单.csv") for p in exc.problems)
        return
    for row in sheet.rows:
        assert row.line >= 2
    for problem in sheet.problems:
        assert problem.where.startswith("名单.csv:")


def test_an_impossible_date_is_an_error_naming_the_file(tmp_path: Path) -> None:
    """Found by the fuzzing: YAML's own date reader raised a bare ValueError for 2021-02-30."""
    path = tmp_path / "bad.yaml"
    path.write_text(FILES["calendar"].read_text(encoding="utf-8") + "extra_holidays: [2021-02-30]\n", encoding="utf-8")
    try:
        read_yaml(path)
    except InvalidInput as exc:
        assert exc.problems[0].where == str(path) and "day is out of range" in exc.problems[0].what
    else:
        raise AssertionError("an impossible date was read")
