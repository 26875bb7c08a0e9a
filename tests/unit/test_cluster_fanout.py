"""From policy, nodes and tasks to the task writes."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageprune.api import intorpercent, labelselector, task
from imageprune.api.policy import Mode, PolicySpec, Rollout, Trigger
from imageprune.cluster import fanout, observed
from testkit.cluster import view

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning"),
]

NOW = datetime.datetime(2026, 11, 29, 3, tzinfo=datetime.UTC)
RUN = observed.Run("20261129-030000-schedule", Trigger.SCHEDULE, Mode.ENFORCE, NOW)
WORKERS = labelselector.from_dict({"matchLabels": {"role": "worker"}}, "spec.nodeSelector")
SPEC = PolicySpec(
    mode=Mode.ENFORCE,
    node_selector=WORKERS,
    rollout=Rollout(max_concurrent_nodes=intorpercent.IntOrPercent(100, percent=True)),
    selection={"scope": "Unused", "unusedFor": "2m"},
)


def plan(
    nodes: dict[str, dict[str, str]],
    tasks: list[observed.TaskView],
    run: observed.Run | None = RUN,
    spec: PolicySpec = SPEC,
    released: frozenset[str] = frozenset(),
) -> fanout.Plan:
    return fanout.plan(
        policy="p",
        generation=3,
        spec=spec,
        nodes=nodes,
        tasks=tasks,
        run=run,
        released=released,
        now=NOW,
    )


def test_only_matching_nodes_get_tasks_and_others_lose_theirs() -> None:
    nodes = {
        "a": {"role": "worker"},
        "b": {"role": "worker"},
        "c": {"role": "control-plane"},
    }
    tasks = [
        view("b", observed.NodeState.PENDING, RUN.id),  # joins the run
        view("c", observed.NodeState.SUCCEEDED, "old"),  # relabelled out
        view("gone", observed.NodeState.SUCCEEDED, "old"),  # node deleted
        view("a", observed.NodeState.SUCCEEDED, "old", policy="other"),  # not ours
    ]
    result = plan(nodes, tasks)
    assert result.matched == ("a", "b")
    assert [s.node_name for s in result.create] == ["a"]
    assert [s.node_name for s in result.release] == ["b"]
    assert result.delete == ("p.c", "p.gone")
    created = result.create[0]
    assert created.run_id == RUN.id
    assert (created.mode, created.trigger, created.policy_generation) == (
        Mode.ENFORCE,
        Trigger.SCHEDULE,
        3,
    )
    assert created.selection == SPEC.selection


def test_no_run_yet_creates_nothing_but_still_deletes_strays() -> None:
    result = plan({"a": {"role": "worker"}}, [view("x", None, "old")], run=None)
    assert (result.create, result.release, result.wave) == ((), (), None)
    assert result.delete == ("p.x",)


def test_a_node_released_before_the_index_shows_it_is_not_released_twice() -> None:
    spec = PolicySpec(
        node_selector=WORKERS, rollout=Rollout(max_concurrent_nodes=intorpercent.IntOrPercent(1))
    )
    nodes = {n: {"role": "worker"} for n in ("a", "b", "c")}
    result = plan(nodes, [], spec=spec, released=frozenset({"b"}))
    assert (result.create, result.release) == ((), ())
    assert result.wave is not None
    assert result.wave.in_flight == 1


def test_a_task_with_a_foreign_name_for_a_matched_node_is_replaced() -> None:
    stray = observed.TaskView(name="p.a-copy", node="a", policy="p", spec_run_id="old")
    result = plan({"a": {"role": "worker"}}, [stray])
    assert result.delete == ("p.a-copy",)
    assert [s.node_name for s in result.create] == ["a"]


labels = st.fixed_dictionaries({}, optional={"role": st.sampled_from(["worker", "infra"])})
names = st.sampled_from([f"n{i}" for i in range(12)])


@settings(max_examples=300, deadline=None)
@given(
    nodes=st.dictionaries(names, labels, max_size=12),
    task_nodes=st.lists(
        st.tuples(names, st.sampled_from([*observed.NodeState, None]), st.booleans()),
        max_size=12,
        unique_by=lambda t: t[0],
    ),
    has_run=st.booleans(),
)
def test_every_task_is_kept_or_deleted_and_writes_target_matched_nodes_only(
    nodes: dict[str, dict[str, str]],
    task_nodes: list[tuple[str, observed.NodeState | None, bool]],
    has_run: bool,
) -> None:
    tasks = [view(n, s, RUN.id, policy="p" if ours else "q") for n, s, ours in task_nodes]
    result = plan(nodes, tasks, run=RUN if has_run else None)
    matched = {n for n, lab in nodes.items() if lab.get("role") == "worker"}
    assert set(result.matched) == matched
    ours = [t for t in tasks if t.policy == "p"]
    kept = {t.name for t in result.tasks.values()}
    assert kept | set(result.delete) == {t.name for t in ours}
    assert not kept & set(result.delete)
    assert all(t.node in matched for t in result.tasks.values())
    written = [s.node_name for s in (*result.create, *result.release)]
    assert len(written) == len(set(written))
    assert set(written) <= matched
    assert all(s.node_name not in result.tasks for s in result.create)
    assert all(task.task_name("p", s.node_name) in kept for s in result.release)
