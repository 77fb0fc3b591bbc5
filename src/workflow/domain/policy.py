"""Province policy: what happens to a unit that fails verification, and to a certified unit
whose spot check (抽查) finds problems.

Loaded from the round's calendar file (``policy:`` block); a new province is a
data file, never an ``if province == ...``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ProblemList

OnFail = Literal["rectification", "not_certified"]
OnProblems = Literal["rectification", "revoke"]


@dataclass(frozen=True, slots=True)
class SpotCheckPolicy:
    """What a spot check's problems lead to: ``rectification`` (the title is held while the
    unit rectifies within ``rectification_days`` and is rechecked: passed, the title stands;
    failed or late, it is revoked) or ``revoke`` (the title is revoked at once; the unit takes
    part again in a later round)."""

    on_problems: OnProblems
    rectification_days: int | None


@dataclass(frozen=True, slots=True)
class Policy:
    """``on_fail``: ``rectification`` (Shanxi: rectify within N days, then a recheck) or
    ``not_certified`` (Hunan: the unit is re-evaluated in the next year's round).
    ``carry_over``: a unit whose case ends not_certified is carried into the next round
    and its new case records where it came from.
    ``spot_check``: what a spot check's problems lead to; None for a round opened before the
    calendar said (recording problems in such a round is refused, saying so)."""

    on_fail: OnFail
    rectification_days: int | None
    carry_over: bool
    spot_check: SpotCheckPolicy | None = None

    def to_data(self) -> dict[str, Any]:
        """As kept with the round (and read back by ``policy_from_dict``)."""
        out: dict[str, Any] = {"on_fail": self.on_fail, "rectification_days": self.rectification_days,
                               "carry_over": self.carry_over}
        if self.spot_check is not None:
            out["spot_check"] = {"on_problems": self.spot_check.on_problems,
                                 "rectification_days": self.spot_check.rectification_days}
        return out

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
    _unknown(data, {"on_fail", "rectification_days", "carry_over", "spot_check"}, where, problems)
    on_fail = data.get("on_fail")
    if on_fail not in ("rectification", "not_certified"):
        problems.add(f"{where}.on_fail", f"must be 'rectification' or 'not_certified', got {on_fail!r}",
                     f"须为 'rectification'（整改后复核）或 'not_certified'（不予认定），填写的是 {on_fail!r}")
    days = _days(data, on_fail == "rectification", "on_fail", where, problems)
    carry = data.get("carry_over")
    if not isinstance(carry, bool):
        problems.add(f"{where}.carry_over", f"must be true or false, got {carry!r}",
                     f"须为 true 或 false，填写的是 {carry!r}")
    spot = _spot_check(data.get("spot_check"), f"{where}.spot_check", problems) if "spot_check" in data else None
    problems.raise_if_any(f"invalid policy in {where}", f"{where} 的政策有误，共{problems.count}处")
    return Policy(on_fail=on_fail, rectification_days=days, carry_over=carry, spot_check=spot)


def _spot_check(data: Any, where: str, problems: ProblemList) -> SpotCheckPolicy | None:
    if not isinstance(data, Mapping):
        problems.add(where, f"must be a mapping with on_problems (and rectification_days); got {type(data).__name__}",
                     f"须为含 on_problems（及 rectification_days）的映射；实际是 {type(data).__name__}")
        return None
    _unknown(data, {"on_problems", "rectification_days"}, where, problems)
    on_problems = data.get("on_problems")
    if on_problems not in ("rectification", "revoke"):
        problems.add(f"{where}.on_problems", f"must be 'rectification' or 'revoke', got {on_problems!r}",
                     f"须为 'rectification'（限期整改后复核）或 'revoke'（撤销称号），填写的是 {on_problems!r}")
    days = _days(data, on_problems == "rectification", "on_problems", where, problems)
    if on_problems not in ("rectification", "revoke") or (on_problems == "rectification" and not isinstance(days, int)):
        return None
    return SpotCheckPolicy(on_problems, days)


def _unknown(data: Mapping[str, Any], known: set[str], where: str, problems: ProblemList) -> None:
    for key in sorted(set(data) - known, key=str):
        problems.add(f"{where}.{key}", f"unknown field (known: {', '.join(sorted(known))})",
                     f"未知字段（可用字段：{'、'.join(sorted(known))}）")


def _days(data: Mapping[str, Any], needed: bool, by: str, where: str, problems: ProblemList) -> Any:
    """``rectification_days``: 1–366 when the rule (``by``) is rectification, else absent."""
    days = data.get("rectification_days")
    if needed:
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
            problems.add(f"{where}.rectification_days", f"must be a whole number of days from 1 to 366, got {days!r}",
                         f"须为1至366的整数天数，填写的是 {days!r}")
    elif days is not None:
        problems.add(f"{where}.rectification_days", f"only allowed when {by} is 'rectification'",
                     f"只有 {by} 为 'rectification' 时才能填写")
    return days
