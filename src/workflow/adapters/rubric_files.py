"""Rubric YAML files: load and validate one file, or a directory of them (a catalog).

A new province's rubric is a new ``<rubric id>.yaml`` file in the directory, not code.
"""
from __future__ import annotations

from pathlib import Path

from ..domain.errors import InvalidInput, NotFound, Problem, problems_gist_zh
from ..domain.rubric import Rubric, rubric_from_dict
from .data_files import read_yaml

DEFAULT_RUBRIC_DIR = Path(__file__).resolve().parents[3] / "rubrics"


def load_rubric(path: str | Path) -> Rubric:
    """Read, parse and validate one rubric file; every failure is an ``InvalidInput`` naming the file."""
    return rubric_from_dict(read_yaml(Path(path)), str(path))


class RubricCatalog:
    """Every ``*.yaml`` rubric in a directory, keyed by rubric id (the file name without .yaml)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else DEFAULT_RUBRIC_DIR
        if not self.directory.is_dir():
            raise InvalidInput(
                f"rubric directory {self.directory} does not exist",
                [Problem(str(self.directory), "not a directory", "不是文件夹")],
                f"评价标准文件夹 {self.directory} 不存在",
            )
        rubrics: dict[str, Rubric] = {}
        problems: list[Problem] = []
        for path in sorted(self.directory.glob("*.yaml")):
            try:
                rubric = load_rubric(path)
            except InvalidInput as exc:
                problems.extend(exc.problems)
                continue
            if rubric.id != path.stem:
                problems.append(Problem(f"{path}: id",
                                        f"rubric id {rubric.id!r} must match the file name {path.stem!r}",
                                        f"评价标准编号 {rubric.id!r} 须与文件名 {path.stem!r} 一致"))
            else:
                rubrics[rubric.id] = rubric
        if problems:
            raise InvalidInput(f"invalid rubrics in {self.directory}", problems,
                               f"{self.directory} 中的评价标准有误：{problems_gist_zh(problems)}",
                               directory=str(self.directory))
        self._rubrics = rubrics

    def get(self, rubric_id: str) -> Rubric:
        try:
            return self._rubrics[rubric_id]
        except KeyError:
            known = ", ".join(sorted(self._rubrics)) or "none"
            raise NotFound(
                f"no rubric {rubric_id!r} (known: {known})",
                f"没有评价标准 {rubric_id!r}（现有：{'、'.join(sorted(self._rubrics)) or '无'}）",
                rubric_id=rubric_id,
                known=sorted(self._rubrics),
            ) from None

    def all(self) -> tuple[Rubric, ...]:
        """Every rubric, sorted by id."""
        return tuple(self._rubrics[k] for k in sorted(self._rubrics))
