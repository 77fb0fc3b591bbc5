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


class Forbidden(DomainError):
    """Not allowed this way (e.g. an action recorded only through its own resource)."""

    code = "forbidden"


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


class BadValue(ValueError):
    """A value refused by a field's parser, said in English (the message) and in Chinese
    (``zh``), as specifically: whoever names the problem passes both on."""

    def __init__(self, message: str, zh: str) -> None:
        super().__init__(message)
        self.zh = zh


def zh_of(exc: BaseException) -> str | None:
    """The Chinese of an error that has one (:class:`BadValue`, :class:`DomainError`), else None."""
    zh = getattr(exc, "zh", None) or getattr(exc, "message_zh", None)
    return zh if isinstance(zh, str) else None


def problems_gist_zh(problems: list[Problem], count: int | None = None, shown: int = 3) -> str:
    """The gist in Chinese: how many problems, and the first ones as they were written (in
    Chinese where they were, else as they are)."""
    count = max(count or 0, len(problems))
    listed = "；".join(f"{p.where}：{p.zh or p.what}" for p in problems[:shown])
    return f"输入有误，共{count}处：{listed}" + ("等" if count > shown else "")


# An error lists at most this many problems, and says how many there were in all: a file
# with a million bad rows is answered with its first problems and a count, not a million.
MAX_PROBLEMS = 100


class InvalidInput(DomainError):
    """Bad input; lists every problem found (the first :data:`MAX_PROBLEMS` of them, and
    ``problem_count``, how many there were in all)."""

    code = "invalid_input"

    def __init__(self, message: str, problems: list[Problem] | None = None, message_zh: str | None = None,
                 *, problem_count: int | None = None, **details: Any) -> None:
        given = list(problems or [])
        self.problem_count = max(problem_count or 0, len(given))
        self.problems = given[:MAX_PROBLEMS]
        if self.problem_count > len(self.problems):
            details = {**details, "problem_count": self.problem_count, "problems_listed": len(self.problems)}
        if message_zh is None and self.problems:  # no Chinese gist given: the problems' own Chinese
            message_zh = problems_gist_zh(self.problems, self.problem_count)
        super().__init__(message, message_zh, problems=[p.to_dict() for p in self.problems], **details)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [self.message] + [f"  - {p}" for p in self.problems]
        if self.problem_count > len(self.problems):
            lines.append(f"  ... and {self.problem_count - len(self.problems)} more problems "
                         f"({self.problem_count} in all)")
        return "\n".join(lines)


class Incomplete(InvalidInput):
    """The case is not ready for the action (e.g. submitting without a complete sheet)."""

    code = "incomplete"


@dataclass
class ProblemList:
    """Collects problems; raise once at the end with every one of them."""

    problems: list[Problem] = field(default_factory=list)
    count: int = 0  # every problem added, kept or not (only the first MAX_PROBLEMS are kept)

    def __post_init__(self) -> None:
        self.count = max(self.count, len(self.problems))
        del self.problems[MAX_PROBLEMS:]

    def extend(self, problems: list[Problem], count: int | None = None) -> None:
        """Add problems found elsewhere (``count``: how many there were, if more than listed)."""
        for problem in problems:
            self.add(problem.where, problem.what, problem.zh)
        self.count += max(0, (count or 0) - len(problems))

    def add(self, where: str, what: str, zh: str | None = None) -> None:
        self.count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(where, what, zh))

    def __bool__(self) -> bool:
        return self.count > 0

    def raise_if_any(self, message: str, message_zh: str | None = None, **details: Any) -> None:
        if self.count:
            raise InvalidInput(message, self.problems, message_zh, problem_count=self.count, **details)
