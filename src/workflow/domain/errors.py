"""Domain errors: every refusal says what is wrong and where.

Each error carries a machine-readable ``code`` (used by the CLI and, later, the
HTTP error shape) and ``details`` (JSON-safe), besides its message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DomainError(Exception):
    """Base of every error the domain raises on purpose. ``message_zh``, when given, is the
    same message in Chinese (the API shows it; without it the API shows the code's gist)."""

    code = "domain_error"

    def __init__(self, message: str, message_zh: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh
        self.details = details

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class ConfigError(DomainError):
    """A setting that cannot work (e.g. a database URL that is not usable)."""

    code = "config"


class NotFound(DomainError):
    code = "not_found"


class AlreadyExists(DomainError):
    code = "already_exists"


class ActionRefused(DomainError):
    """An action that the case's state (or the policy) does not allow."""

    code = "action_refused"


class StorageUnavailable(DomainError):
    """Files could not be written (disk full, file too large for the file system, I/O error)."""

    code = "storage_unavailable"


class ConflictError(DomainError):
    """Someone else changed the case since it was read (optimistic concurrency)."""

    code = "conflict"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and what is wrong (``zh``: the same in
    Chinese, where the message has been written in both)."""

    where: str
    what: str
    zh: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"

    def to_dict(self) -> dict[str, str]:
        out = {"where": self.where, "what": self.what}
        if self.zh is not None:
            out["zh"] = self.zh
        return out


class InvalidInput(DomainError):
    """Bad input; lists every problem found, not just the first."""

    code = "invalid_input"

    def __init__(self, message: str, problems: list[Problem] | None = None, message_zh: str | None = None,
                 **details: Any) -> None:
        self.problems = list(problems or [])
        super().__init__(message, message_zh, problems=[p.to_dict() for p in self.problems], **details)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [self.message] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class Incomplete(InvalidInput):
    """The case is not ready for the action (e.g. submitting without a complete sheet)."""

    code = "incomplete"


@dataclass
class ProblemList:
    """Collects problems; raise once at the end with every one of them."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, where: str, what: str, zh: str | None = None) -> None:
        self.problems.append(Problem(where, what, zh))

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self, message: str, message_zh: str | None = None, **details: Any) -> None:
        if self.problems:
            raise InvalidInput(message, self.problems, message_zh, **details)
