"""Crash: a simulated round in a subprocess, killed with SIGKILL at 15 random database
commits (inside transitions, sweeps, dispatch and imports; just before or just after the
commit), restarted each time until it completes. Afterwards the audit check passes and the
events and delivered mails equal, one for one, those of an uninterrupted run of the same
scenario: nothing lost, nothing duplicated."""
from __future__ import annotations

import email
import os
import random
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from workflow.config import REPO_ROOT

WORKFLOW = str(Path(sys.executable).parent / "workflow")
# 15 by default (each kill is a process start, ~2 s on CI's machine); 200 with --run-slow
KILLS = int(os.environ.get("WORKFLOW_CRASH_KILLS", "15"))


def _scenario(tmp_path: Path) -> Path:
    """The Shanxi example from late September (shorter; the June contact form is missed by all)."""
    text = (REPO_ROOT / "examples" / "shanxi-2021.yaml").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if "date: 2021-06-" not in line]
    out = "\n".join(lines).replace("start: 2021-05-26", "start: 2021-09-28")
    out = out.replace("jurisdictions: jurisdictions.csv", f"jurisdictions: {REPO_ROOT / 'examples' / 'jurisdictions.csv'}")
    out = out.replace("units: shanxi-2021-units.csv", f"units: {REPO_ROOT / 'examples' / 'shanxi-2021-units.csv'}")
    out += "\n  - {date: 2021-10-01, units: all, except: [省贸促会], do: contacts}\n"
    path = tmp_path / "round.yaml"
    path.write_text(out, encoding="utf-8")
    return path


def _simulate(scenario: Path, db: Path, maildir: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(extra)
    return subprocess.run([WORKFLOW, "simulate", str(scenario), "--db", f"sqlite:///{db}", "--maildir", str(maildir),
                           "--timeline-rows", "0"], env=env, capture_output=True, text=True, timeout=600)


def _events(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT case_id, seq, type, actor, occurred_at, payload, prev_hash, hash FROM events "
                            "ORDER BY case_id, seq").fetchall()


def _mails(maildir: Path) -> Counter:
    out: Counter = Counter()
    for folder in ("new", "cur"):
        for path in (maildir / folder).iterdir() if (maildir / folder).is_dir() else ():
            msg = email.message_from_bytes(path.read_bytes())
            out[(msg["Message-ID"], str(msg["To"]), str(msg["Subject"]), msg["Date"])] += 1
    return out


def test_killed_at_random_commits_a_round_ends_as_if_never_interrupted(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    counted = tmp_path / "commits.txt"
    clean = _simulate(scenario, tmp_path / "clean.db", tmp_path / "clean-mail", WORKFLOW_FAULT_COUNT_FILE=str(counted))
    assert clean.returncode == 0, clean.stderr
    commits = int(counted.read_text())
    assert commits > 200

    rng = random.Random(20261122)
    db, maildir = tmp_path / "crashed.db", tmp_path / "crashed-mail"
    kills = 0
    finished = False
    while kills < KILLS:
        point = f"{rng.randint(1, max(2, 2 * commits // KILLS))}:{rng.choice(['before', 'after'])}"
        done = _simulate(scenario, db, maildir, WORKFLOW_FAULT_KILL_AT=point)
        if done.returncode == 0:
            finished = True
            break
        assert done.returncode == -9, f"killed at {point}: exit {done.returncode}\n{done.stderr[-2000:]}"
        kills += 1
    if not finished:
        done = _simulate(scenario, db, maildir)
        assert done.returncode == 0, done.stderr
        assert "resumed a run that had finished" in done.stdout
    assert kills >= KILLS // 2, f"only {kills} kills before the run completed"  # spread over the whole run

    audit = subprocess.run([WORKFLOW, "audit", "verify"], env={**{k: v for k, v in os.environ.items()
                                                                if not k.startswith("WORKFLOW_")},
                                                             "WORKFLOW_DATABASE_URL": f"sqlite:///{db}"},
                           capture_output=True, text=True, timeout=300)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    clean_events, crashed_events = _events(tmp_path / "clean.db"), _events(db)
    assert len(crashed_events) == len(clean_events)
    assert crashed_events == clean_events
    clean_mails, crashed_mails = _mails(tmp_path / "clean-mail"), _mails(maildir)
    assert max(crashed_mails.values()) == 1, "a mail was delivered twice"
    assert crashed_mails == clean_mails
    with sqlite3.connect(db) as a, sqlite3.connect(tmp_path / "clean.db") as b:
        query = "SELECT dedupe_key, status FROM outbox ORDER BY dedupe_key"
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


@pytest.mark.slow
def test_soak_two_hundred_kills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same with 200 kill points (only with --run-slow)."""
    monkeypatch.setattr(sys.modules[__name__], "KILLS", 200)
    test_killed_at_random_commits_a_round_ends_as_if_never_interrupted(tmp_path)
