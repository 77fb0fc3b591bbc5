"""Province policy: what happens to a unit that fails verification.

Loaded from the round's calendar file (``policy:`` block); a new province is a
data file, never an ``if province == ...``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ProblemList

OnFail = Literal["rectification", "not_certified"]


@dataclass(frozen=True, slots=True)
class Policy:
    """``on_fail``: ``rectification`` (Shanxi: rectify within N days, then a recheck) or
    ``not_certified`` (Hunan: the unit is re-evaluated in the next year's round).
    ``carry_over``: a unit whose case ends not_certified is carried into the next round
    and its new case records where it came from."""

    on_fail: OnFail
    rectification_days: int | None
    carry_over: bool

    @property
    def has_rectification(self) -> bool:
        return self.on_fail == "rectification"


def policy_from_dict(data: Any, where: str) -> Policy:
    problems = ProblemList()
    if not isinstance(data, Mapping):
        problems.add(where, "must be a mapping with on_fail, rectification_days, carry_over; "
                            f"got {type(data).__name__}",
                     f"须为含 on_fail、rectification_days、carry_over 的映射；实际是 {type(data).__name__}")
        problems.raise_if_any(f"invalid policy in {where}", f"{where} 的政策有误")
    known = {"on_fail", "rectification_days", "carry_over"}
    for key in sorted(set(data) - known):
        problems.add(f"{where}.{key}", f"unknown field (known: {', '.join(sorted(known))})",
                     f"未知字段（可用字段：{'、'.join(sorted(known))}）")
    on_fail = data.get("on_fail")
    if on_fail not in ("rectification", "not_certified"):
        problems.add(f"{where}.on_fail", f"must be 'rectification' or 'not_certified', got {on_fail!r}",
                     f"须为 'rectification'（整改后复核）或 'not_certified'（不予认定），填写的是 {on_fail!r}")
    days = data.get("rectification_days")
    if on_fail == "rectification":
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
            problems.add(f"{where}.rectification_days", f"must be a whole number of days from 1 to 366, got {days!r}",
                         f"须为1至366的整数天数，填写的是 {days!r}")
    elif days is not None:
        problems.add(f"{where}.rectification_days", "only allowed when on_fail is 'rectification'",
                     "只有 on_fail 为 'rectification' 时才能填写")
    carry = data.get("carry_over")
    if not isinstance(carry, bool):
        problems.add(f"{where}.carry_over", f"must be true or false, got {carry!r}",
                     f"须为 true 或 false，填写的是 {carry!r}")
    problems.raise_if_any(f"invalid policy in {where}", f"{where} 的政策有误，共{problems.count}处")
    return Policy(on_fail=on_fail, rectification_days=days, carry_over=carry)
