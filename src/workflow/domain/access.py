"""Who may see what: a principal (the holder of an API token) and its scope.

A unit sees its own cases; a coordinator or an auditor everything under their
jurisdiction (a subtree); an admin everything. Outside its scope a case does not exist
for the principal (the API answers 404).
"""
from __future__ import annotations

from dataclasses import dataclass

from .case import Actor

ROLES = ("unit", "coordinator", "auditor", "admin")
# The scope of a coordinator or auditor whose jurisdiction cannot be resolved (deleted, or
# its path lost): a path no jurisdiction can have (ids are [a-z0-9_-]), so every filter by it
# finds nothing. Scope fails closed: never "no path, so everything".
UNRESOLVED = "/!unresolved/"
NO_UNIT = 0  # the same for a unit token whose unit cannot be resolved


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: str
    unit_id: int | None = None
    jurisdiction_path: str | None = None  # "/shanxi/shanxi-taiyuan/" for coordinators and auditors
    unit_path: str | None = None  # a unit's: the path of the jurisdiction it belongs to
    account_id: int | None = None  # the account the token belongs to (None: a token made before accounts)
    account_name: str | None = None  # its display name
    channel: str = "api"

    def __post_init__(self) -> None:
        if self.role in ("coordinator", "auditor") and not self.jurisdiction_path:
            object.__setattr__(self, "jurisdiction_path", UNRESOLVED)
        if self.role == "unit" and self.unit_id is None:  # a unit id no unit has (ids start at 1)
            object.__setattr__(self, "unit_id", NO_UNIT)
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")

    @property
    def unresolved(self) -> bool:
        """A scoped principal whose scope could not be resolved: it sees nothing."""
        return self.jurisdiction_path == UNRESOLVED or (self.role == "unit" and self.unit_id == NO_UNIT)

    @property
    def actor(self) -> Actor:
        ident = str(self.unit_id) if self.role == "unit" else self.name
        return Actor(self.role, ident, self.account_id, self.account_name, self.channel)

    def sees(self, unit_id: int, jurisdiction_path: str) -> bool:
        if self.role == "admin":
            return True
        if self.unresolved:
            return False
        if self.role == "unit":
            return unit_id == self.unit_id
        return self.jurisdiction_path is not None and jurisdiction_path.startswith(self.jurisdiction_path)

    def sees_path(self, jurisdiction_path: str) -> bool:
        """Whether a jurisdiction (by its path) is in this principal's subtree."""
        if self.role == "admin":
            return True
        return (not self.unresolved and self.jurisdiction_path is not None
                and jurisdiction_path.startswith(self.jurisdiction_path))

    @property
    def read_only(self) -> bool:
        return self.role == "auditor"
