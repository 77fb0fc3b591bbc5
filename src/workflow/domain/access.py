"""Who may see what: a principal (the holder of an API token) and its scope.

A unit sees its own cases; a coordinator or an auditor everything under their
jurisdiction (a subtree); an admin everything. Outside its scope a case does not exist
for the principal (the API answers 404).
"""
from __future__ import annotations

from dataclasses import dataclass

from .case import Actor

ROLES = ("unit", "coordinator", "auditor", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: str
    unit_id: int | None = None
    jurisdiction_path: str | None = None  # "/shanxi/shanxi-taiyuan/" for coordinators and auditors
    unit_path: str | None = None  # a unit's: the path of the jurisdiction it belongs to

    @property
    def actor(self) -> Actor:
        if self.role == "unit":
            return Actor("unit", str(self.unit_id))
        return Actor(self.role, self.name)

    def sees(self, unit_id: int, jurisdiction_path: str) -> bool:
        if self.role == "admin":
            return True
        if self.role == "unit":
            return unit_id == self.unit_id
        return self.jurisdiction_path is not None and jurisdiction_path.startswith(self.jurisdiction_path)

    @property
    def read_only(self) -> bool:
        return self.role == "auditor"
