"""Waves never exceed rollout.maxConcurrentNodes, and the failure budget pauses the run."""

from __future__ import annotations

import dataclasses
import datetime
import random
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageprune.api import intorpercent
from imageprune.api.policy import Rollout
from imageprune.cluster import observed, rollout, standing
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
T = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
# None: released, not started; "busy": still running an older run; SKIPPED: no task and
# no working agent.
node_states = st.sampled_from([*State, None, "busy", "absent"])


def _next_wave(
    matched: Sequence[str],
    tasks: Mapping[str, observed.TaskView],
    policy: Rollout,
    *,
    hold: bool = False,
    unable: Mapping[str, standing.Unable] | None = None,
) -> rollout.Wave:
    standings = {
        node: standing.stand(
            tasks.get(node),
            run_id=R,
            unable=(unable or {}).get(node),
            now=T,
            node_timeout=policy.node_timeout,
        )
        for node in matched
    }
    return rollout.next_wave(matched=matched, standings=standings, rollout=policy, hold=hold)


def _task(node: str, state: object) -> observed.TaskView | None:
    if state in ("absent", State.SKIPPED):
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
    unable = {
        n: standing.Unable.AGENT_NOT_RUNNING
        for n, s in zip(matched, states, strict=True)
        if s is State.SKIPPED
    }
    policy = Rollout(max_concurrent_nodes=concurrent, max_failed_nodes=failed)
    wave = _next_wave(matched, tasks, policy, hold=hold, unable=unable)

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
        wave = _next_wave(matched, tasks, policy)
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
    wave = _next_wave(NODES[:10], tasks, policy)
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
    wave = _next_wave(["a", "b"], {"a": busy}, policy)
    assert wave.release == ()
    assert wave.in_flight == 1


def test_a_node_that_cannot_run_takes_no_place_in_a_wave_of_one() -> None:
    """maxConcurrentNodes 1, and the first node in order has no agent: the wave goes on
    to the next node instead of waiting on it, whether or not it was released."""
    policy = Rollout(max_concurrent_nodes=intorpercent.IntOrPercent(1))
    no_agent = {"a": standing.Unable.AGENT_NOT_RUNNING}
    assert _next_wave(["a", "b"], {}, policy, unable=no_agent).release == ("b",)
    released = {"a": view("a", None, R)}
    assert _next_wave(["a", "b"], released, policy, unable=no_agent).release == ("b",)
    # Its agent works again while the run is under way: it joins the run.
    assert _next_wave(["a", "b"], {}, policy).release == ("a",)


def test_a_skipped_node_is_no_failure() -> None:
    policy = Rollout(max_failed_nodes=intorpercent.IntOrPercent(0))
    not_ready = dict.fromkeys(NODES[:5], standing.Unable.NODE_NOT_READY)
    wave = _next_wave(NODES[:6], {}, policy, unable=not_ready)
    assert (wave.paused, wave.failed, wave.release) == (False, 0, (NODES[5],))


def test_an_agent_silent_past_the_node_timeout_fails_its_node_and_frees_its_place() -> None:
    policy = Rollout(max_concurrent_nodes=intorpercent.IntOrPercent(1))
    started = view("a", State.RUNNING, R)
    for age, failed, release in [
        (policy.node_timeout - datetime.timedelta(seconds=1), 0, ()),
        (policy.node_timeout, 1, ()),  # the failure budget (0) is spent: paused
    ]:
        task = dataclasses.replace(started, started_at=T - age)
        wave = _next_wave(["a", "b"], {"a": task}, policy)
        assert (wave.failed, wave.release) == (failed, release)
    tolerant = Rollout(
        max_concurrent_nodes=intorpercent.IntOrPercent(1),
        max_failed_nodes=intorpercent.IntOrPercent(1),
    )
    task = dataclasses.replace(started, started_at=T - policy.node_timeout)
    assert _next_wave(["a", "b"], {"a": task}, tolerant).release == ("b",)
    stood = standing.stand(task, run_id=R, unable=None, now=T, node_timeout=tolerant.node_timeout)
    assert (stood.state, stood.reason) == (State.FAILED, "NodeTimeout")
    assert "rollout.nodeTimeout (1h)" in stood.message
