"""Round calendars: which province and year a calendar serves, and its policy.

Calendars are data files (``calendars/*.yaml``), validated on load.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .errors import InvalidInput, ProblemList
from .policy import Policy, policy_from_dict

_KNOWN = {"id", "title", "province", "source", "year", "recurring", "policy"}


@dataclass(frozen=True, slots=True)
class Calendar:
    id: str
    title: str
    province: str
    year: int | None  # the one round year it serves, or None when recurring
    recurring: bool
    policy: Policy
    source: str | None = None

    def serves(self, year: int) -> bool:
        return self.recurring or self.year == year


def calendar_from_dict(data: Any, source: str) -> Calendar:
    problems = ProblemList()
    if not isinstance(data, Mapping):
        raise InvalidInput(f"invalid calendar {source}", [])
    for key in sorted(set(data) - _KNOWN):
        problems.add(f"{source}: {key}", f"unknown field (known: {', '.join(sorted(_KNOWN))})")
    for key in ("id", "title", "province"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            problems.add(f"{source}: {key}", "required text")
    year, recurring = data.get("year"), data.get("recurring")
    if recurring not in (None, "yearly"):
        problems.add(f"{source}: recurring", f"must be 'yearly' when given, got {recurring!r}")
    if (year is None) == (recurring is None):
        problems.add(f"{source}: year", "give exactly one of year (one round year) or recurring: yearly")
    elif year is not None and (not isinstance(year, int) or isinstance(year, bool) or not 2000 <= year <= 2100):
        problems.add(f"{source}: year", f"must be a year from 2000 to 2100, got {year!r}")
    policy = None
    try:
        policy = policy_from_dict(data.get("policy"), f"{source}: policy")
    except InvalidInput as exc:
        problems.problems.extend(exc.problems)
    problems.raise_if_any(f"invalid calendar {source}")
    assert policy is not None
    return Calendar(id=data["id"], title=data["title"], province=data["province"], year=year,
                    recurring=recurring is not None, policy=policy, source=data.get("source"))
