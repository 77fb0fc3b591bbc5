"""Loading versioned data files (YAML) with errors that name the file and line."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import yaml

from ..domain.errors import InvalidInput, NotFound, Problem


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Identified)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (plain YAML keeps the last one silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class LineDict(dict[Any, Any]):
    """A mapping that knows the line it starts on (1-based)."""

    line: int = 0


class _LineLoader(_StrictLoader):
    """Mappings come out as :class:`LineDict`, so validation can name the line."""


def _construct_line_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> LineDict:
    out = LineDict(_construct_mapping(loader, node, deep=True))
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_line_mapping)


def read_yaml(path: Path, *, lines: bool = False) -> Any:
    """Parse a YAML data file; a missing file, bad encoding, syntax error or duplicate key
    is an ``InvalidInput`` naming the file and line. With ``lines`` every mapping is a
    :class:`LineDict` carrying the line it starts on."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 text",
                           [Problem(str(path), f"not UTF-8 at byte {exc.start}",
                                    f"第 {exc.start} 字节处不是 UTF-8 编码")],
                           f"{path}：不是 UTF-8 编码的文本") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}",
                           [Problem(str(path), exc.strerror or str(exc), f"无法读取（{exc.strerror or exc}）")],
                           f"无法读取 {path}") from None
    try:
        return yaml.load(text, Loader=_LineLoader if lines else _StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"{where}: YAML syntax error: {what}",
                           [Problem(where, f"YAML syntax error: {what}", f"YAML 语法错误：{what}")],
                           f"{where}：YAML 语法错误：{what}") from None
    except (ValueError, OverflowError, TypeError, RecursionError) as exc:  # e.g. a date 2021-02-30, an unhashable key
        what = f"a value YAML cannot read: {exc}"
        raise InvalidInput(f"{path}: {what}", [Problem(str(path), what, f"YAML 无法读取的值：{exc}")],
                           f"{path}：YAML 无法读取的值：{exc}") from None


# What each kind of data file is called in Chinese.
KIND_NAMES = {"file": "文件", "calendar": "工作日程", "rubric": "评价标准"}


class Catalog(Generic[T]):
    """The data files of one kind in a folder, by id (the file's ``id`` field)."""

    kind = "file"

    def __init__(self, directory: Path, parse: Callable[[Any, str], T]) -> None:
        self.directory = Path(directory)
        self._parse = parse
        self._cache: dict[str, T] | None = None

    def _load(self) -> dict[str, T]:
        if self._cache is None:
            found: dict[str, T] = {}
            for path in sorted(self.directory.glob("*.yaml")):
                item = self._parse(read_yaml(path), str(path))
                ident = item.id
                if ident in found:
                    raise InvalidInput(f"{path}: {self.kind} id {ident!r} is used by another file too", [],
                                       f"{path}：{KIND_NAMES.get(self.kind, self.kind)}编号 {ident!r} "
                                       "已被另一个文件使用")
                found[ident] = item
            self._cache = found
        return self._cache

    def get(self, ident: str) -> T:
        items = self._load()
        if ident not in items:
            known = ", ".join(sorted(items)) or "none"
            raise NotFound(f"no {self.kind} {ident!r} (known: {known})",
                           f"没有{KIND_NAMES.get(self.kind, self.kind)} {ident!r}"
                           f"（现有：{'、'.join(sorted(items)) or '无'}）")
        return items[ident]

    def all(self) -> list[T]:
        return list(self._load().values())
