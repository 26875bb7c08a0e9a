"""The kopf layer, kept thin: the policy handlers and timer that call
reconcile.reconcile, the finalizer that deletes a policy's tasks, and the operator
settings (our annotation prefix and finalizer, fixed from the first release).

kopf sees the policies only. Nodes, tasks and agent pods are watched by our own client
into our own indexes (fleet, agents): through kopf, thousands of Nodes made the start
quadratic, and change handlers on tasks would write kopf's diff-base annotation on each
(docs/operator.md). A task's change wakes its policy's pass (debounced)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from imageprune.api import names, task
from imageprune.api.fields import mapping
from imageprune.api.policy import Trigger
from imageprune.cluster import (
    agents,
    aggregate,
    fleet,
    kubeapi,
    metrics,
    observed,
    reconcile,
    standing,
)
from imageprune.kube import resources, watch
from imageprune.kube.client import Client as KubeClient
from imageprune.kube.config import Target

_POLICIES = (names.GROUP, names.VERSION, names.POLICY_PLURAL)
# A task's change wakes its policy this long after: the changes of a wave arrive
# together, and one pass answers them all.
WAKE_DELAY = 1.0
# How long a pass waits for the first listing of nodes and tasks before kopf retries it.
SYNC_TIMEOUT = 60.0
# How long a pass waits for the first listing of the agent pods.
AGENT_SYNC_GRACE = 10.0
_log = logging.getLogger("imageprune.cluster")


@dataclasses.dataclass(frozen=True)
class AgentSelector:
    """Where the agent DaemonSet's pods are: a node without a Ready one is skipped."""

    namespace: str
    labels: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Config:
    target: Target  # the apiserver and our credentials (kopf logs in with the same)
    interval: float = 10.0  # seconds between two passes over a policy (its timer)
    agents: AgentSelector | None = None  # None: agents are not pods (tests, by hand)


class _Operator:
    """The state the handlers share: one client, our indexes, a memory per policy."""

    def __init__(self) -> None:
        self.client: kubeapi.Client | None = None
        self.policies: dict[str, reconcile.PolicyMemory] = {}
        self.disk_runs: dict[str, str] = {}  # task name -> the disk-pressure run reported
        self.agents = agents.AgentPods()
        self.nodes = fleet.Nodes()
        self.tasks = fleet.Tasks()
        self.synced = asyncio.Event()  # nodes and tasks listed once
        self.watches: list[asyncio.Task[None]] = []
        self.agents_watched = False
        self.agents_listed = asyncio.Event()
        # policy name -> its next pass, as the last kopf handler call would run it
        self.passes: dict[str, Callable[[], Awaitable[None]]] = {}
        self.woken: dict[str, asyncio.Task[None]] = {}

    async def report_disk_run(self, type: str | None, body: Mapping[str, Any]) -> None:
        """Report a node's own disk-pressure run on its policy (once per run)."""
        view = observed.task_view(body)
        if view is None or type == "DELETED":
            self.disk_runs.pop(str(mapping(body.get("metadata")).get("name") or ""), None)
            return
        disk_run = view.status_trigger == Trigger.DISK_PRESSURE and view.completed
        if not disk_run or self.disk_runs.get(view.name) == view.status_run_id:
            return
        self.disk_runs[view.name] = view.status_run_id or ""
        if type is None:
            return  # listed at startup: reported before, by the previous process
        what = "would remove" if view.dry_run else "removed"
        message = (
            f"node {view.node} ran a disk-pressure run ({view.status_run_id}): {what}"
            f" {view.removed_images} images ({view.removed_bytes} bytes)"
        )
        owner = _owner(body)
        if owner is not None:
            await self.api().post_event(
                involved=owner, warning=False, reason="DiskPressureRun", message=message
            )
        if not view.dry_run:
            metrics.disk_pressure_run(
                view.policy, images=view.removed_images, reclaimed=view.removed_bytes
            )

    def start(self, config: Config, logger: kubeapi.Logger) -> None:
        kube = KubeClient(config.target)
        self.client = kubeapi.Client(kube, logger)
        self.watches = [
            asyncio.create_task(
                self._follow_nodes(watch.Watcher(kube, resources.Node, keep=fleet.node_essentials))
            ),
            asyncio.create_task(
                self._follow_tasks(watch.Watcher(kube, resources.Task, keep=task.essentials))
            ),
        ]
        if config.agents is not None:
            self.agents_watched = True
            self.watches.append(asyncio.create_task(self._follow_agents(kube, config.agents)))

    async def _follow_nodes(self, watcher: watch.Watcher) -> None:
        async for event in watcher.events():
            if isinstance(event, watch.Listed):
                self.nodes.replace(event.items)
                del event  # indexed: the listing must not stay alive until the next change
                self._mark_synced()
            else:
                self.nodes.update(event.type, event.object)

    async def _follow_tasks(self, watcher: watch.Watcher) -> None:
        async for event in watcher.events():
            if isinstance(event, watch.Listed):
                self.tasks.replace(event.items)
                for body in event.items:
                    await self._report(None, body)
                del event
                self._mark_synced()
                continue
            policy = self.tasks.update(event.type, event.object)
            await self._report(event.type, event.object)
            if policy is not None:
                self.wake(policy)

    async def _report(self, type: str | None, body: Mapping[str, Any]) -> None:
        try:
            await self.report_disk_run(type, body)
        except Exception:  # an Event or a metric must never stop the watch
            _log.exception("could not report a disk-pressure run")

    async def _follow_agents(self, kube: KubeClient, selector: AgentSelector) -> None:
        watcher = watch.Watcher(
            kube,
            resources.Pod,
            namespace=selector.namespace,
            labels=selector.labels,
            keep=agents.pod_essentials,
        )
        async for event in watcher.events():
            if isinstance(event, watch.Listed):
                self.agents.replace(event.items)
                del event
                self.agents_listed.set()
            else:
                self.agents.update(event.type, event.object)

    def _mark_synced(self) -> None:
        if self.nodes.synced and self.tasks.synced and not self.synced.is_set():
            # The end of the start's listings: on a large fleet, the news people wait for.
            tasks = sum(len(views) for views in self.tasks.by_policy.values())
            _log.info("listed %d nodes and %d tasks", len(self.nodes.labels), tasks)
            self.synced.set()

    async def wait_synced(self) -> None:
        try:
            await asyncio.wait_for(self.synced.wait(), SYNC_TIMEOUT)
        except TimeoutError:
            raise kopf.TemporaryError("nodes and tasks are not listed yet", delay=5) from None
        if self.agents_watched:
            # Before the agent pods are listed, a node without an agent looks like any other
            # and gets its task. Not for ever: a pod watch that RBAC refuses must not stop
            # every run (until listed, no node is held to lack an agent, as before).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.agents_listed.wait(), AGENT_SYNC_GRACE)

    def wake(self, policy: str) -> None:
        """A pass over `policy` in WAKE_DELAY, unless one is already coming."""
        if policy in self.passes and policy not in self.woken:
            self.woken[policy] = asyncio.create_task(self._woken(policy))

    async def _woken(self, policy: str) -> None:
        await asyncio.sleep(WAKE_DELAY)
        del self.woken[policy]  # changes from here on wake it again
        run = self.passes.get(policy)
        if run is None:
            return  # deleted meanwhile
        try:
            await run()
        except Exception:  # the timer's next pass retries; kopf would log the same
            _log.exception("pass over policy %s failed", policy)

    async def stop(self) -> None:
        running = [*self.watches, *self.woken.values()]
        for task_ in running:
            task_.cancel()
        for task_ in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task_

    def api(self) -> kubeapi.Client:
        if self.client is None:
            raise kopf.TemporaryError("the operator is still starting", delay=1)
        return self.client


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf settings, fixed: renaming the prefix or finalizer later would strand objects."""
    settings.persistence.finalizer = names.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=names.KOPF_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.KOPF_PREFIX, key="last-handled-configuration"
    )
    # One replica with strategy Recreate (docs/operator.md): no peering objects.
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING  # our own Events are posted explicitly
    settings.posting.reporting_component = kubeapi.COMPONENT


def register(registry: kopf.OperatorRegistry, config: Config) -> None:
    state = _Operator()

    @kopf.on.startup(id="client", registry=registry)
    async def startup(logger: kubeapi.Logger, **_: Any) -> None:
        # async: kopf runs a sync handler in a thread, where no event loop takes tasks.
        state.start(config, logger)

    @kopf.on.cleanup(id="watches", registry=registry)
    async def cleanup(**_: Any) -> None:
        await state.stop()

    async def run_pass(body: kopf.Body, logger: kubeapi.Logger) -> None:
        if body.metadata.deletion_timestamp is not None:
            return  # the finalizer deletes the tasks; no pass may create new ones
        await state.wait_synced()
        uid = body.metadata.uid or ""
        memory = state.policies.setdefault(uid, reconcile.PolicyMemory())
        name = body.metadata.name or ""
        state.passes[name] = lambda: run_pass(body, logger)

        async def announce(event: aggregate.Event) -> None:
            await client.post_event(
                involved=_reference(name, uid),
                warning=event.warning,
                reason=event.reason,
                message=event.message,
            )

        client = state.api()
        nodes = state.nodes.labels

        await reconcile.reconcile(
            reconcile.Policy(
                name=name,
                uid=uid,
                generation=int(body.metadata.get("generation", 1)),
                created=datetime.datetime.fromisoformat(str(body.metadata.creation_timestamp)),
                spec=body.spec,
                status=body.status,
                annotations=body.metadata.annotations,
            ),
            nodes=nodes,
            tasks=state.tasks.of(name),
            unable=standing.unable(
                nodes,
                not_ready=state.nodes.not_ready,
                working=state.agents.working() if state.agents.synced else None,
            ),
            memory=memory,
            client=client,
            announce=announce,
            logger=logger,
            now=datetime.datetime.now(datetime.UTC),
        )

    # Explicit ids: kopf names its progress annotations after them.
    @kopf.on.resume(*_POLICIES, id="pass", backoff=5, registry=registry)
    @kopf.on.create(*_POLICIES, id="pass", backoff=5, registry=registry)
    @kopf.on.update(*_POLICIES, id="pass", backoff=5, registry=registry)
    @kopf.timer(*_POLICIES, id="timer", interval=config.interval, registry=registry)
    async def policy_pass(body: kopf.Body, logger: kubeapi.Logger, **_: Any) -> None:
        """A new or changed policy (or a run-now annotation) gets its pass at once; the
        timer's is the steady pass: cron ticks, nodes coming and going, and whatever a
        woken pass missed."""
        await run_pass(body, logger)

    @kopf.on.delete(*_POLICIES, id="cleanup", backoff=5, registry=registry)
    async def policy_deleted(body: kopf.Body, logger: kubeapi.Logger, **_: Any) -> None:
        name = body.metadata.name or ""
        state.passes.pop(name, None)
        memory = state.policies.setdefault(body.metadata.uid or "", reconcile.PolicyMemory())
        known = len(state.tasks.of(name))
        async with memory.lock:  # a pass under way finishes its writes first
            await reconcile.delete_tasks(name, client=state.api())
        logger.info("deleted the tasks of policy %s (%d known)", name, known)
        state.policies.pop(body.metadata.uid or "", None)
        metrics.forget(name)


def _owner(body: Mapping[str, Any]) -> dict[str, str] | None:
    """The policy a task belongs to, as an Event's involvedObject."""
    found = mapping(body.get("metadata")).get("ownerReferences")
    for owner in found if isinstance(found, list) else []:
        if isinstance(owner, Mapping) and owner.get("kind") == names.POLICY_KIND:
            return _reference(str(owner.get("name")), str(owner.get("uid")))
    return None


def _reference(name: str, uid: str) -> dict[str, str]:
    return {"apiVersion": names.API_VERSION, "kind": names.POLICY_KIND, "name": name, "uid": uid}
