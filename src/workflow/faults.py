"""Fault injection for the crash tests: kill this process at a chosen database commit.

``WORKFLOW_FAULT_KILL_AT=N:before`` (or ``N:after``) sends SIGKILL to the process just
before (or after) its N-th commit — a transition, a sweep step, a dispatcher outcome, an
import. ``WORKFLOW_FAULT_COUNT_FILE=PATH`` writes the number of commits at exit, so a test
can choose its kill points within a run. Unset (always, outside the fault suite), both
cost one global look-up per commit.
"""
from __future__ import annotations

import atexit
import os
import signal
from pathlib import Path

_spec = os.environ.get("WORKFLOW_FAULT_KILL_AT", "")
_at, _, _when = _spec.partition(":")
KILL_AT: int | None = int(_at) if _at.isdigit() else None
KILL_WHEN = _when or "before"
_count_file = os.environ.get("WORKFLOW_FAULT_COUNT_FILE")
_commits = 0
ACTIVE = KILL_AT is not None or bool(_count_file)


def commit_point(stage: str) -> None:
    """Called just before (``before``) and after (``after``) every commit."""
    global _commits
    if stage == "before":
        _commits += 1
    if KILL_AT is not None and _commits == KILL_AT and stage == KILL_WHEN:
        os.kill(os.getpid(), signal.SIGKILL)


if _count_file:
    _counts = Path(_count_file)
    atexit.register(lambda: _counts.write_text(str(_commits)))
