"""JSON with exact decimal numbers: Decimals are written as JSON numbers, never via float."""
from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def json_number(value: Decimal) -> int | Decimal:
    """``int`` when whole (``Decimal('2.0')`` -> ``2``), else the Decimal unchanged."""
    return int(value) if value == value.to_integral_value() else value


def dumps_json(obj: Any, *, indent: int | None = None) -> str:
    """``json.dumps`` that writes Decimals as JSON numbers (``str(d)``), never via float."""
    return _encode(obj, indent, 0)


def _encode(obj: Any, indent: int | None, level: int) -> str:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"cannot write {obj} as a JSON number")
        return str(obj)
    if isinstance(obj, float):
        raise TypeError(f"float {obj!r} refused: use Decimal")
    if isinstance(obj, Mapping):
        parts = [f"{json.dumps(str(k), ensure_ascii=False)}: {_encode(v, indent, level + 1)}" for k, v in obj.items()]
        return _join(parts, "{", "}", indent, level)
    if isinstance(obj, (list, tuple)):
        return _join([_encode(v, indent, level + 1) for v in obj], "[", "]", indent, level)
    return json.dumps(obj, ensure_ascii=False)


def _join(parts: list[str], open_: str, close: str, indent: int | None, level: int) -> str:
    if not parts:
        return open_ + close
    if indent is None:
        return open_ + ", ".join(parts) + close
    inner = "\n" + " " * (indent * (level + 1))
    return open_ + inner + ("," + inner).join(parts) + "\n" + " " * (indent * level) + close
