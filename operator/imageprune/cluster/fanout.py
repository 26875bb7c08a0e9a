"""From a policy, the nodes and the policy's existing tasks to the task writes: tasks to
create or to release into the current run (a wave, see rollout), and tasks to delete
because their node is gone or no longer matches."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Collection, Iterable, Mapping

from imageprune.api import task
from imageprune.api.policy import PolicySpec
from imageprune.cluster import observed, rollout, standing


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    matched: tuple[str, ...]  # sorted node names
    tasks: Mapping[str, observed.TaskView]  # the matched nodes' tasks, by node
    standings: Mapping[str, standing.Standing]  # every matched node's, in the run
    create: tuple[task.TaskSpec, ...]
    release: tuple[task.TaskSpec, ...]  # existing tasks whose spec joins the run
    delete: tuple[str, ...]  # task names
    wave: rollout.Wave | None  # None when there is no run yet


def plan(
    *,
    policy: str,
    generation: int,
    spec: PolicySpec,
    nodes: Mapping[str, Mapping[str, str]],  # node name -> labels
    tasks: Iterable[observed.TaskView],  # this policy's tasks (others are ignored)
    run: observed.Run | None,
    released: Collection[str] = (),  # nodes already released into `run` (a lagging index)
    unable: Mapping[str, standing.Unable] | None = None,  # nodes that cannot run now
    now: datetime.datetime,
) -> Plan:
    matched = tuple(sorted(n for n, labels in nodes.items() if spec.node_selector.matches(labels)))
    wanted = set(matched)
    kept: dict[str, observed.TaskView] = {}
    delete = []
    for view in tasks:
        if view.policy != policy:
            continue  # another policy whose label value collides with ours
        if view.node in wanted and view.name == task.task_name(policy, view.node):
            kept[view.node] = view
        else:
            delete.append(view.name)
    if run is None:
        return Plan(matched, kept, {}, (), (), tuple(sorted(delete)), None)
    for node in wanted.intersection(released):
        view = kept.get(node) or observed.TaskView(
            name=task.task_name(policy, node), node=node, policy=policy, spec_run_id=run.id
        )
        kept[node] = dataclasses.replace(view, spec_run_id=run.id)
    standings = {
        node: standing.stand(
            kept.get(node),
            run_id=run.id,
            unable=(unable or {}).get(node),
            now=now,
            node_timeout=spec.rollout.node_timeout,
        )
        for node in matched
    }
    wave = rollout.next_wave(
        matched=matched, standings=standings, rollout=spec.rollout, hold=spec.suspend
    )
    specs = [
        task.TaskSpec(
            node_name=node,
            policy_name=policy,
            policy_generation=generation,
            run_id=run.id,
            trigger=run.trigger,
            # The current spec, not the run's start: switching to DryRun mid-run must hold.
            mode=spec.mode,
            selection=spec.selection,
            requested_at=now,
        )
        for node in wave.release
    ]
    return Plan(
        matched,
        kept,
        standings,
        create=tuple(s for s in specs if s.node_name not in kept),
        release=tuple(s for s in specs if s.node_name in kept),
        delete=tuple(sorted(delete)),
        wave=wave,
    )
