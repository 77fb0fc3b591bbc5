"""The calendar's ``policy.spot_check``: what a spot check's problems lead to, read strictly."""
from __future__ import annotations

import pytest

from workflow.domain.errors import InvalidInput
from workflow.domain.policy import Policy, SpotCheckPolicy, policy_from_dict

BASE = {"on_fail": "rectification", "rectification_days": 20, "carry_over": False}


def test_both_readings_and_none_are_read() -> None:
    assert policy_from_dict({**BASE, "spot_check": {"on_problems": "rectification", "rectification_days": 20}},
                            "p").spot_check == SpotCheckPolicy("rectification", 20)
    assert policy_from_dict({**BASE, "spot_check": {"on_problems": "revoke"}}, "p").spot_check == \
        SpotCheckPolicy("revoke", None)
    assert policy_from_dict(BASE, "p").spot_check is None
    kept = Policy("rectification", 20, False, SpotCheckPolicy("revoke", None))
    assert policy_from_dict(kept.to_data(), "p") == kept  # as kept with the round, read back


@pytest.mark.parametrize("spot, wheres", [
    ({"on_problems": "warn"}, {"p.spot_check.on_problems"}),
    ({"on_problems": "rectification"}, {"p.spot_check.rectification_days"}),
    ({"on_problems": "revoke", "rectification_days": 20}, {"p.spot_check.rectification_days"}),
    ({"on_problems": "rectification", "rectification_days": 0, "x": 1},
     {"p.spot_check.rectification_days", "p.spot_check.x"}),
    ("revoke", {"p.spot_check"}),
])
def test_every_mistake_is_named_in_both_languages(spot: object, wheres: set[str]) -> None:
    with pytest.raises(InvalidInput) as caught:
        policy_from_dict({**BASE, "spot_check": spot}, "p")
    assert {p.where for p in caught.value.problems} == wheres
    assert all(p.zh for p in caught.value.problems)
