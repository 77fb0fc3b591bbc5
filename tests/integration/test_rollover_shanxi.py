"""Shanxi 2021 → 2022. The documents we hold set Shanxi's target for 2021 only (晋直管发〔2021〕39号:
"2021 年底，50%的县级及以上党政机关建成节约型机关"), so a roll-over without a target is refused
with exactly that and what to give; with the target given it opens 2022 on the recurring calendar
(decision 39)."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from workflow.domain.errors import InvalidInput
from workflow.service.rounds import roll_over

from ..support import ADMIN, CALENDARS, RUBRICS, open_shanxi

NOW = datetime(2022, 1, 10, 2, 0, tzinfo=UTC)
WORKFLOW = str(Path(sys.executable).parent / "workflow")


def test_the_documents_set_no_shanxi_target_after_2021() -> None:
    recurring = CALENDARS.for_year("shanxi", 2022)
    assert recurring.id == "shanxi" and recurring.overall_target(2021) == Decimal("0.5")
    assert recurring.overall_target(2022) is None and CALENDARS.get("shanxi-2021").overall_target(2021) == Decimal("0.5")


def test_shanxi_rolls_over_to_2022_with_the_target_it_is_given(db) -> None:
    open_shanxi(db, datetime(2021, 5, 26, 2, 0, tzinfo=UTC))
    with pytest.raises(InvalidInput) as refused:
        roll_over(db, RUBRICS, CALENDARS, "shanxi-2021", actor=ADMIN, now=NOW)
    [problem] = refused.value.problems
    assert problem.where == "target_share"
    assert problem.what == (
        "calendar shanxi sets no target for 2022: its documents (晋直管发〔2020〕38号，按晋直管发〔2021〕39号执行) "
        "set one only for 2021 (50% by the end of 2021); give the round's target share, e.g. 0.5 "
        "(--target 0.5 on the command line, target_share in the API)")
    assert "只规定了2021年的目标（2021年底50%）" in problem.zh and "--target 0.5" in problem.zh
    assert db.rounds.round("shanxi-2022") is None  # nothing was opened
    opened = roll_over(db, RUBRICS, CALENDARS, "shanxi-2021", target_share="0.6", actor=ADMIN, now=NOW)
    assert (opened.round_id, opened.calendar_id, opened.target_share, opened.registered) == \
        ("shanxi-2022", "shanxi", Decimal("0.6"), 35)
    rnd = db.rounds.round("shanxi-2022")
    assert rnd.year == 2022 and rnd.rubric_id == "shanxi-2020" and rnd.target_share == Decimal("0.6")
    assert rnd.targets == []  # the schedule has nothing for 2022: the round's own share is the target


def test_the_cli_says_what_to_pass(tmp_path: Path) -> None:
    """`workflow rounds rollover` without --target: the reason and the flag, on stderr, exit 2."""
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.migrate import upgrade
    from workflow.adapters.db.store import Database

    url = f"sqlite:///{tmp_path}/w.db"
    engine = make_engine(url)
    upgrade(engine)
    open_shanxi(Database(engine), datetime(2021, 5, 26, 2, 0, tzinfo=UTC))
    try:  # --actor names an account where there are accounts: the first admin, "ops"
        from workflow.service.accounts import create_account
    except ImportError:  # before accounts, --actor admin:ops is the actor itself
        pass
    else:
        create_account(Database(engine), by=None, login="ops", name="运维", role="admin", now=NOW)
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=url, COLUMNS="300")
    done = subprocess.run([WORKFLOW, "rounds", "rollover", "shanxi-2021", "--actor", "admin:ops"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "sets no target for 2022" in done.stderr and "--target 0.5" in done.stderr, done.stderr
