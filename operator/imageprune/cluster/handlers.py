"""The kopf layer, kept thin: indexes of nodes and tasks, the policy handlers and timer
that call reconcile.reconcile, the finalizer that deletes a policy's tasks, and the
operator settings (our annotation prefix and finalizer, fixed from the first release).

No change-detection handler (on.update, on.field) watches ImagePruneTask: kopf would write
its diff-base annotation on every task, thousands of writes per run (see
docs/operator.md). Tasks are read through an index and on.event only."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import kopf

from imageprune.api import names
from imageprune.api.policy import Trigger
from imageprune.cluster import agents, aggregate, kubeapi, metrics, observed, reconcile, standing
from imageprune.kube import resources, watch
from imageprune.kube.client import Client as KubeClient
from imageprune.kube.config import Target

_POLICIES = (names.GROUP, names.VERSION, names.POLICY_PLURAL)
_TASKS = (names.GROUP, names.VERSION, names.TASK_PLURAL)


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
    """The state the handlers share: one client, and a memory per policy."""

    def __init__(self) -> None:
        self.client: kubeapi.Client | None = None
        self.policies: dict[str, reconcile.PolicyMemory] = {}
        self.disk_runs: dict[str, str] = {}  # task name -> the disk-pressure run reported
        self.agents = agents.AgentPods()
        self.agent_watch: asyncio.Task[None] | None = None

    async def report_disk_run(self, type: str | None, body: kopf.Body) -> None:
        """Report a node's own disk-pressure run on its policy (once per run)."""
        view = observed.task_view(body)
        if view is None or type == "DELETED":
            self.disk_runs.pop(body.metadata.name or "", None)
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
        if config.agents is not None:
            self.agent_watch = asyncio.create_task(_follow(kube, config.agents, self.agents))

    def unable(
        self, nodes: Iterable[str], not_ready: Collection[str]
    ) -> dict[str, standing.Unable]:
        working = self.agents.working() if self.agents.synced else None
        return standing.unable(nodes, not_ready=not_ready, working=working)

    async def stop_agent_watch(self) -> None:
        if self.agent_watch is not None:
            self.agent_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.agent_watch

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

    @kopf.on.cleanup(id="agents", registry=registry)
    async def cleanup(**_: Any) -> None:
        await state.stop_agent_watch()

    # kopf passes each index to handlers as a keyword named after its id.
    @kopf.index("nodes", id="node_labels", registry=registry)
    def node_labels(name: str, labels: Mapping[str, str], **_: Any) -> dict[str, dict[str, str]]:
        return {name: dict(labels)}

    # Only the few NotReady nodes. A filter, not a None result: kopf keeps an object's
    # last value when its function returns None, and drops it only when the filter stops
    # matching (the node is Ready again).
    @kopf.index(
        "nodes",
        id="nodes_not_ready",
        when=lambda body, **_: observed.node_not_ready(body),
        registry=registry,
    )
    def nodes_not_ready(name: str, **_: Any) -> dict[str, bool]:
        return {name: True}

    @kopf.index(*_TASKS, id="policy_tasks", registry=registry)
    def policy_tasks(body: kopf.Body, **_: Any) -> dict[str, observed.TaskView] | None:
        view = observed.task_view(body)
        return {view.policy: view} if view else None

    @kopf.on.event(*_TASKS, id="task", registry=registry)
    async def task_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        await state.report_disk_run(type, body)

    async def run_pass(body: kopf.Body, logger: kubeapi.Logger, kwargs: Mapping[str, Any]) -> None:
        nodes: kopf.Index[str, dict[str, str]] = kwargs["node_labels"]
        not_ready: kopf.Index[str, bool] = kwargs["nodes_not_ready"]
        tasks: kopf.Index[str, observed.TaskView] = kwargs["policy_tasks"]
        if body.metadata.deletion_timestamp is not None:
            return  # the finalizer deletes the tasks; no pass may create new ones
        uid = body.metadata.uid or ""
        memory = state.policies.setdefault(uid, reconcile.PolicyMemory())
        name = body.metadata.name or ""

        async def announce(event: aggregate.Event) -> None:
            await client.post_event(
                involved=_reference(name, uid),
                warning=event.warning,
                reason=event.reason,
                message=event.message,
            )

        client = state.api()

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
            nodes={node: labels for node, store in nodes.items() for labels in store},
            tasks=tasks.get(name, ()),
            unable=state.unable(nodes, not_ready),
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
    async def policy_changed(body: kopf.Body, logger: kubeapi.Logger, **kwargs: Any) -> None:
        """A new or changed policy (or a run-now annotation) gets its pass at once."""
        await run_pass(body, logger, kwargs)

    @kopf.timer(*_POLICIES, id="timer", interval=config.interval, registry=registry)
    async def policy_timer(body: kopf.Body, logger: kubeapi.Logger, **kwargs: Any) -> None:
        """The steady pass: cron ticks, waves as nodes finish, nodes coming and going,
        and the status aggregated from the tasks."""
        await run_pass(body, logger, kwargs)

    @kopf.on.delete(*_POLICIES, id="cleanup", backoff=5, registry=registry)
    async def policy_deleted(body: kopf.Body, logger: kubeapi.Logger, **_: Any) -> None:
        name = body.metadata.name or ""
        memory = state.policies.setdefault(body.metadata.uid or "", reconcile.PolicyMemory())
        async with memory.lock:  # a pass under way finishes its writes first
            deleted = await reconcile.delete_tasks(name, client=state.api())
        logger.info("deleted the %d tasks of policy %s", deleted, name)
        state.policies.pop(body.metadata.uid or "", None)
        metrics.forget(name)


async def _follow(kube: KubeClient, selector: AgentSelector, pods: agents.AgentPods) -> None:
    watcher = watch.Watcher(
        kube, resources.Pod, namespace=selector.namespace, labels=selector.labels
    )
    async for event in watcher.events():
        if isinstance(event, watch.Listed):
            pods.replace(event.items)
        else:
            pods.update(event.type, event.object)


def _owner(body: kopf.Body) -> dict[str, str] | None:
    """The policy a task belongs to, as an Event's involvedObject."""
    for owner in body.metadata.get("ownerReferences", []):
        if owner.get("kind") == names.POLICY_KIND:
            return _reference(str(owner.get("name")), str(owner.get("uid")))
    return None


def _reference(name: str, uid: str) -> dict[str, str]:
    return {"apiVersion": names.API_VERSION, "kind": names.POLICY_KIND, "name": name, "uid": uid}
