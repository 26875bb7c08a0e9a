"""Waves never exceed rollout.maxConcurrentNodes, and the failure budget pauses the run."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageprune.api import intorpercent
from imageprune.api.policy import Rollout
from imageprune.cluster import observed, rollout
from testkit.cluster import view

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning"),
]

R = "run-2"
State = observed.NodeState
NODES = [f"node-{i:02}" for i in range(30)]

counts_or_percents = st.one_of(
    st.builds(intorpercent.IntOrPercent, st.integers(1, 12)),
    st.builds(lambda v: intorpercent.IntOrPercent(v, percent=True), st.integers(1, 100)),
)
budgets = st.one_of(
    st.builds(intorpercent.IntOrPercent, st.integers(0, 5)),
    st.builds(lambda v: intorpercent.IntOrPercent(v, percent=True), st.integers(0, 100)),
)
# None: released, not started; "busy": still running an older run.
node_states = st.sampled_from([*State, None, "busy", "absent"])


def _task(node: str, state: object) -> observed.TaskView | None:
    if state == "absent":
        return None
    if state == "busy":
        return observed.TaskView(
            name=f"p.{node}", node=node, policy="p", spec_run_id="run-1", status_run_id="run-1"
        )
    assert state is None or isinstance(state, State)
    return view(node, state, R)


@settings(max_examples=300, deadline=None)
@given(
    states=st.lists(node_states, min_size=0, max_size=len(NODES)),
    concurrent=counts_or_percents,
    failed=budgets,
    hold=st.booleans(),
)
def test_a_wave_fits_the_room_left_and_a_spent_budget_releases_nothing(
    states: list[object],
    concurrent: intorpercent.IntOrPercent,
    failed: intorpercent.IntOrPercent,
    hold: bool,
) -> None:
    matched = NODES[: len(states)]
    tasks = {n: t for n, s in zip(matched, states, strict=True) if (t := _task(n, s))}
    policy = Rollout(max_concurrent_nodes=concurrent, max_failed_nodes=failed)
    wave = rollout.next_wave(matched=matched, tasks=tasks, run_id=R, rollout=policy, hold=hold)

    in_flight = sum(s in (State.RUNNING, None, "busy") for s in states)
    failures = states.count(State.FAILED)
    assert (wave.in_flight, wave.failed) == (in_flight, failures)
    assert wave.paused == (failures > policy.failure_budget(len(matched)))
    if wave.release:
        assert not wave.paused
        assert not hold
        assert in_flight + len(wave.release) <= policy.wave_size(len(matched))
    waiting = {n for n, s in zip(matched, states, strict=True) if s in ("absent", State.PENDING)}
    assert set(wave.release) <= waiting
    if not wave.paused and not hold:
        room = max(0, policy.wave_size(len(matched)) - in_flight)
        assert len(wave.release) == min(room, len(waiting))
    assert list(wave.release) == sorted(wave.release)


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 25),
    concurrent=counts_or_percents,
    failed=budgets,
    seed=st.integers(0, 2**32),
    failure_rate=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_a_simulated_rollout_never_exceeds_the_wave_and_ends_or_pauses(
    size: int,
    concurrent: intorpercent.IntOrPercent,
    failed: intorpercent.IntOrPercent,
    seed: int,
    failure_rate: float,
) -> None:
    """Agents start and finish released nodes in random order; the operator releases a
    wave after each change. The run completes, or pauses exactly when the failures
    exceed the budget."""
    rng = random.Random(seed)
    matched = NODES[:size]
    policy = Rollout(max_concurrent_nodes=concurrent, max_failed_nodes=failed)
    tasks: dict[str, observed.TaskView] = {}
    for _ in range(10 * size + 10):
        wave = rollout.next_wave(matched=matched, tasks=tasks, run_id=R, rollout=policy)
        for node in wave.release:
            tasks[node] = view(node, None, R)
        flying = [n for n, t in tasks.items() if t.in_flight(R)]
        assert len(flying) <= policy.wave_size(size)
        if wave.paused or not flying:
            break
        node = rng.choice(flying)
        current = tasks[node].state(R)
        if current is State.PENDING:
            tasks[node] = view(node, State.RUNNING, R)
        else:
            outcome = State.FAILED if rng.random() < failure_rate else State.SUCCEEDED
            tasks[node] = view(node, outcome, R)
    failures = sum(t.state(R) is State.FAILED for t in tasks.values())
    over_budget = failures > policy.failure_budget(size)
    assert wave.paused == over_budget
    if not over_budget:
        assert sorted(tasks) == matched
        assert all(t.state(R) in (State.SUCCEEDED, State.FAILED) for t in tasks.values())


def test_the_pause_reason_names_the_field_and_the_numbers() -> None:
    tasks = {n: view(n, State.FAILED, R) for n in NODES[:2]}
    policy = Rollout(max_failed_nodes=intorpercent.IntOrPercent(1))
    wave = rollout.next_wave(matched=NODES[:10], tasks=tasks, run_id=R, rollout=policy)
    assert wave.paused
    assert wave.release == ()
    assert wave.paused_reason is not None
    assert "2 of 10 nodes failed" in wave.paused_reason
    assert "rollout.maxFailedNodes" in wave.paused_reason


def test_a_node_busy_with_a_disk_pressure_run_counts_against_the_wave() -> None:
    busy = observed.TaskView(
        name="p.a", node="a", policy="p", spec_run_id="old", status_run_id="disk-1"
    )
    policy = Rollout(max_concurrent_nodes=intorpercent.IntOrPercent(1))
    wave = rollout.next_wave(matched=["a", "b"], tasks={"a": busy}, run_id=R, rollout=policy)
    assert wave.release == ()
    assert wave.in_flight == 1
