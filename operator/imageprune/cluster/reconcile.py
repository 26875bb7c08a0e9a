"""One pass over one policy: decide whether a run starts, write the tasks of this wave,
write the status and announce what changed. Called by the policy's timer and by its
change handlers, one at a time per policy (PolicyMemory.lock); no kopf decorators here."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Awaitable, Callable, Iterable, Mapping

from imageprune.api import names, task, times
from imageprune.api import policy as policy_api
from imageprune.cluster import aggregate, fanout, kubeapi, metrics, observed, schedule, standing
from imageprune.policy import selection

Announce = Callable[[aggregate.Event], Awaitable[None]]


@dataclasses.dataclass
class PolicyMemory:
    """What this process wrote last: the operator is the only writer of a policy's status
    (and of the run-now-handled annotation), so it is newer than a body the watch has not
    delivered yet, and deciding from it cannot start the same run twice."""

    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    status: Mapping[str, object] | None = None
    run_now_handled: str | None = None
    released: frozenset[str] = frozenset()  # nodes released into run `released_run`
    released_run: str | None = None


@dataclasses.dataclass(frozen=True)
class Policy:
    """The parts of the policy object a pass reads."""

    name: str
    uid: str
    generation: int
    created: datetime.datetime
    spec: Mapping[str, object]
    status: Mapping[str, object]
    annotations: Mapping[str, str]


async def reconcile(
    policy: Policy,
    *,
    nodes: Mapping[str, Mapping[str, str]],
    tasks: Iterable[observed.TaskView],
    unable: Mapping[str, standing.Unable],
    memory: PolicyMemory,
    client: kubeapi.Client,
    announce: Announce,
    logger: kubeapi.Logger,
    now: datetime.datetime,
) -> None:
    async with memory.lock:
        previous = memory.status if memory.status is not None else policy.status
        try:
            spec = policy_api.parse_spec(policy.spec)
            decision = schedule.decide(spec, _recorded(policy, previous, memory), now=now)
        except selection.PolicyError as error:  # cron.ScheduleError too
            status = aggregate.invalid(
                previous, message=str(error), generation=policy.generation, now=now
            )
            if await _write_status(policy, previous, status, memory, client):
                await announce(aggregate.Event(True, "InvalidSpec", str(error)))
            return
        current = previous
        run = observed.run_from_status(previous)
        if decision.start is not None:
            run = decision.start
            started = {**previous, "observedGeneration": policy.generation, "run": run.to_status()}
            started["failedNodes"] = []
            if decision.last_schedule_time is not None:
                started["lastScheduleTime"] = times.to_rfc3339(decision.last_schedule_time)
            # Persisted before any task is touched: a restart from here on sees this run.
            await _write_status(policy, current, started, memory, client)
            current = started
            logger.info("run %s started (%s)", run.id, run.trigger.value)
            await announce(aggregate.started(run))
            metrics.run_started(policy.name, run.trigger.value)
        if decision.ignored_run_now:
            await announce(
                aggregate.Event(
                    True, "RunNowIgnored", "spec.suspend is true: the run-now request is ignored"
                )
            )
        if decision.run_now_handled is not None and decision.run_now_handled != _handled(
            policy, memory
        ):
            await client.annotate_policy(
                policy.name, {names.RUN_NOW_HANDLED_ANNOTATION: decision.run_now_handled}
            )
            memory.run_now_handled = decision.run_now_handled

        views = [view for view in tasks if view.policy == policy.name]
        if run is not None and memory.released_run != run.id:
            memory.released, memory.released_run = frozenset(), run.id
        plan = fanout.plan(
            policy=policy.name,
            generation=policy.generation,
            spec=spec,
            nodes=nodes,
            tasks=views,
            run=run,
            released=memory.released,
            unable=unable,
            now=now,
        )
        await _apply(plan, policy, client, logger)
        if run is not None:
            # Released by us but not yet seen in the index: still released, for the waves.
            seen = {view.node for view in views if view.spec_run_id == run.id}
            now_released = {spec.node_name for spec in (*plan.create, *plan.release)}
            memory.released = frozenset((memory.released - seen) | now_released)
        status = aggregate.status(
            plan,
            run,
            current,
            aggregate.Context(
                generation=policy.generation,
                now=now,
                suspended=spec.suspend,
                last_schedule_time=decision.last_schedule_time,
                next_run_time=decision.next_run_time,
            ),
        )
        await _write_status(policy, current, status, memory, client)
        for event in aggregate.events(previous, status):
            await announce(event)
        metrics.observe(policy.name, previous, status)


async def delete_tasks(name: str, *, client: kubeapi.Client) -> None:
    """Delete every task of policy `name` (the finalizer's work: no garbage collector
    is needed for correctness): one DeleteCollection by the policy label, else (RBAC
    refuses it) one DELETE per task. The label value is the name itself, or for a name
    over 63 characters its head and a hash, which another policy cannot share."""
    label = task.label_value(name)
    if await client.delete_tasks(policy_label=label):
        return
    found = await client.list_tasks(policy_label=label)
    mine = [t.name for t in (observed.task_view(body) for body in found) if t and t.policy == name]
    for task_name in mine:
        await client.delete_task(task_name)


async def _apply(
    plan: fanout.Plan, policy: Policy, client: kubeapi.Client, logger: kubeapi.Logger
) -> None:
    for name in plan.delete:
        logger.info("deleting task %s: its node is gone or no longer matches", name)
        await client.delete_task(name)
    for spec in plan.create:
        await client.create_task(task.manifest(spec, policy_uid=policy.uid))
    for spec in plan.release:
        await client.patch_task_spec(
            task.task_name(spec.policy_name, spec.node_name), spec.to_dict()
        )


async def _write_status(
    policy: Policy,
    old: Mapping[str, object],
    new: Mapping[str, object],
    memory: PolicyMemory,
    client: kubeapi.Client,
) -> bool:
    """Patch only what changed; True if anything did."""
    patch = aggregate.merge_patch(old, new)
    if patch:
        await client.patch_policy_status(policy.name, patch)
    memory.status = new
    return bool(patch)


def _handled(policy: Policy, memory: PolicyMemory) -> str | None:
    if memory.run_now_handled is not None:
        return memory.run_now_handled
    return policy.annotations.get(names.RUN_NOW_HANDLED_ANNOTATION)


def _recorded(
    policy: Policy, status: Mapping[str, object], memory: PolicyMemory
) -> schedule.Recorded:
    observed_generation = status.get("observedGeneration")
    return schedule.Recorded(
        created=policy.created,
        generation=policy.generation,
        observed_generation=observed_generation if isinstance(observed_generation, int) else None,
        last_run=observed.run_from_status(status),
        last_schedule_time=observed.time_field(status, "lastScheduleTime"),
        run_now=policy.annotations.get(names.RUN_NOW_ANNOTATION),
        run_now_handled=_handled(policy, memory),
    )
