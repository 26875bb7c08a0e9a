from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imageprune.api import policy
from imageprune.api.intorpercent import IntOrPercent
from imageprune.api.policy import Mode, PolicySpec, Rollout
from imageprune.policy.selection import PolicyError

pytestmark = pytest.mark.unit


def test_empty_spec_is_a_dry_run_on_every_node() -> None:
    assert policy.parse_spec({}) == PolicySpec()
    assert PolicySpec().mode is Mode.DRY_RUN
    assert PolicySpec().rollout == Rollout(IntOrPercent(25, percent=True), IntOrPercent(0))


def test_full_spec_splits_cluster_and_selection_fields() -> None:
    spec = {
        "mode": "Enforce",
        "suspend": True,
        "nodeSelector": {"matchLabels": {"pool": "ci"}},
        "schedule": "0 3 * * *",
        "timeZone": "Europe/Paris",
        "rollout": {"maxConcurrentNodes": 2, "maxFailedNodes": "10%"},
        "scope": "Unused",
        "unusedFor": "7d",
        "diskUsage": {"highPercent": 80, "lowPercent": 60},
    }
    parsed = policy.parse_spec(spec)
    assert parsed.mode is Mode.ENFORCE
    assert parsed.suspend is True
    assert parsed.node_selector.matches({"pool": "ci"})
    assert not parsed.node_selector.matches({"pool": "web"})
    assert parsed.schedule == "0 3 * * *"
    assert parsed.time_zone == "Europe/Paris"
    assert parsed.rollout == Rollout(IntOrPercent(2), IntOrPercent(10, percent=True))
    assert parsed.selection == {
        "scope": "Unused",
        "unusedFor": "7d",
        "diskUsage": {"highPercent": 80, "lowPercent": 60},
    }


@pytest.mark.parametrize(
    ("spec", "where", "problem"),
    [
        ({"mode": "enforce"}, "spec.mode", "must be one of DryRun, Enforce"),
        ({"suspend": "yes"}, "spec.suspend", "true or false"),
        ({"schedule": ""}, "spec.schedule", "non-empty string"),
        ({"timeZone": "UTC"}, "spec.timeZone", "requires spec.schedule"),
        ({"schedule": "@daily", "timeZone": "Mars/Olympus"}, "spec.timeZone", "unknown time zone"),
        ({"schedule": "@daily", "timeZone": "../etc"}, "spec.timeZone", "unknown time zone"),
        ({"rollout": 3}, "spec.rollout", "mapping"),
        ({"rollout": {"maxConcurrent": 3}}, "spec.rollout.maxConcurrent", "unknown field"),
        ({"rollout": {"maxConcurrentNodes": 0}}, "spec.rollout.maxConcurrentNodes", "at least 1"),
        ({"rollout": {"maxFailedNodes": -1}}, "spec.rollout.maxFailedNodes", "at least 0"),
        ({"rollout": {"nodeTimeout": "30s"}}, "spec.rollout.nodeTimeout", "at least 1m"),
        ({"rollout": {"nodeTimeout": "an hour"}}, "spec.rollout.nodeTimeout", "invalid duration"),
        ({"rollout": {"nodeTimeout": 3600}}, "spec.rollout.nodeTimeout", "a duration such as"),
        ({"nodeSelector": {"matchLabels": []}}, "spec.nodeSelector.matchLabels", "mapping"),
        # The selection is checked by the node parser, with its own field paths.
        ({"unusedFor": "7days"}, "spec.unusedFor", "invalid duration"),
        ({"diskUsage": {"highPercent": 50, "lowPercent": 60}}, "spec.diskUsage.lowPercent", "less"),
    ],
)
def test_rejects(spec: dict[str, object], where: str, problem: str) -> None:
    with pytest.raises(PolicyError) as raised:
        policy.parse_spec(spec)
    assert raised.value.where == where
    assert problem in raised.value.problem


@pytest.mark.parametrize(
    ("rollout", "matched", "wave", "budget"),
    [
        (Rollout(), 10, 3, 0),
        (Rollout(), 1, 1, 0),
        (Rollout(), 0, 1, 0),
        (Rollout(IntOrPercent(50, percent=True), IntOrPercent(10, percent=True)), 25, 13, 2),
        (Rollout(IntOrPercent(4), IntOrPercent(2)), 3, 4, 2),
    ],
)
def test_wave_size_and_failure_budget(
    rollout: Rollout, matched: int, wave: int, budget: int
) -> None:
    assert rollout.wave_size(matched) == wave
    assert rollout.failure_budget(matched) == budget


def test_the_rollout_pauses_once_failures_exceed_the_budget() -> None:
    rollout = Rollout(max_failed_nodes=IntOrPercent(1))
    assert not rollout.exhausted(failed=1, matched=10)
    assert rollout.exhausted(failed=2, matched=10)
    # The default budget of 0: the first failed node pauses the rollout.
    assert not Rollout().exhausted(failed=0, matched=10)
    assert Rollout().exhausted(failed=1, matched=10)


@given(st.integers(1, 100), st.integers(0, 10_000))
def test_a_percent_wave_is_never_empty_nor_larger_than_the_nodes(
    percent: int, matched: int
) -> None:
    wave = Rollout(max_concurrent_nodes=IntOrPercent(percent, percent=True)).wave_size(matched)
    assert 1 <= wave <= max(1, matched)
