"""A fleet without a runtime, against a real kube-apiserver: N Node objects, agents that
answer every task as the real agent does (its own status builders, agent/status.py),
and the bare-client peer that writes N objects of the same kind as the operator.

One client, one task watch, a bounded number of answers in flight. Every request this
side makes is counted, so that what remains of the apiserver's count is the operator's."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from lightkube.types import PatchType

from imageprune.agent import status as agent_status
from imageprune.api import policy as policy_api
from imageprune.api import task
from imageprune.api.policy import Trigger
from imageprune.kube import resources, watch
from imageprune.kube.client import Client
from imageprune.kube.errors import KubeError

MARK = ("imageprune-bench", "fleet")  # on every object this kit creates
IMAGES_PER_NODE = 20  # a Node's status.images, so that its size is a real node's (~6 KB)


def counted(client: Client) -> collections.Counter[str]:
    """Count every request `client` sends, by method."""
    counts: collections.Counter[str] = collections.Counter()
    send = client.transport.handle_async_request

    async def counting(request: Any) -> Any:
        counts[request.method] += 1
        return await send(request)

    client.transport.handle_async_request = counting  # type: ignore[method-assign]
    return counts


def node_manifest(name: str, *, ready: bool, labels: Mapping[str, str]) -> dict[str, Any]:
    """A Node as a kubelet registers it, status included (a Node keeps it on create)."""
    images = [
        {"names": [f"registry.example/team/app-{i}:v{i}"], "sizeBytes": 10_000_000 + i}
        for i in range(IMAGES_PER_NODE)
    ]
    condition = {"type": "Ready", "status": "True" if ready else "False", "reason": "Bench"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                MARK[0]: MARK[1],
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "m5.xlarge",
                "topology.kubernetes.io/region": "eu-west-1",
                "topology.kubernetes.io/zone": f"eu-west-1{'abc'[len(name) % 3]}",
                **labels,
            },
        },
        "status": {"conditions": [condition], "images": images},
    }


async def bounded(calls: Iterable[Any], width: int) -> None:
    """Await the coroutines, at most `width` at a time."""
    gate = asyncio.Semaphore(width)

    async def one(call: Any) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(call) for call in calls))


async def create_nodes(
    client: Client,
    names_: Iterable[str],
    *,
    labels: Mapping[str, str],
    not_ready: Collection[str] = (),
    width: int = 32,
) -> None:
    await bounded(
        (
            client.create(
                resources.Node.from_dict(
                    node_manifest(name, ready=name not in not_ready, labels=labels)
                )
            )
            for name in names_
        ),
        width,
    )


async def relabel_nodes(
    client: Client, names_: Iterable[str], labels: Mapping[str, str], width: int = 32
) -> None:
    patch = {"metadata": {"labels": dict(labels)}}
    await bounded((client.merge_patch(resources.Node, n, patch) for n in names_), width)


async def create_agent_pods(
    client: Client, nodes: Iterable[str], *, namespace: str, labels: Mapping[str, str]
) -> None:
    """A Ready agent pod on each node (no scheduler or kubelet runs: the bench writes the
    pod and its Ready status, as the kubelet would)."""

    async def one(node: str) -> None:
        name = f"agent-{node}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "agent:bench"}]},
        }
        await client.create(resources.Pod.from_dict(pod))
        ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        await client._api.patch(  # the Status subresource, namespaced
            resources.Pod.Status, name, ready, namespace=namespace, patch_type=PatchType.MERGE
        )

    await bounded((one(node) for node in nodes), 32)


async def bare_client(client: Client, count: int, *, policy: str) -> None:
    """The peer: one plain client writing `count` tasks (built as the operator builds
    them), one after the other, as the operator's pass does."""
    spec = policy_api.parse_spec({"mode": "DryRun"})
    now = datetime.datetime.now(datetime.UTC)
    for i in range(count):
        body = task.manifest(
            task.TaskSpec(
                node_name=f"peer-{i}",
                policy_name=policy,
                policy_generation=1,
                run_id="20261207-000000-runnow-peer",
                trigger=Trigger.RUN_NOW,
                mode=spec.mode,
                selection=spec.selection,
                requested_at=now,
            ),
            policy_uid="peer",
        )
        await client.create(resources.Task.from_dict(body))


@dataclasses.dataclass
class Agents:
    """Answers tasks as agents would: started, then finished with a small report. Nodes in
    `failing` report a failure; nodes in `silent` have no agent and never answer."""

    client: Client
    failing: Collection[str] = ()
    silent: Collection[str] = ()
    width: int = 64  # answers in flight
    tasks: set[str] = dataclasses.field(default_factory=set)  # task names that exist
    answered: dict[str, str] = dataclasses.field(default_factory=dict)  # task -> run id
    created: int = 0  # new task names seen (a duplicate would show as more than the nodes)
    errors: list[str] = dataclasses.field(default_factory=list)
    listed: bool = False

    async def run(self) -> None:
        gate = asyncio.Semaphore(self.width)
        pending: set[asyncio.Task[None]] = set()
        async for event in watch.Watcher(self.client, resources.Task).events():
            bodies = event.items if isinstance(event, watch.Listed) else (event.object,)
            self.listed = True
            for body in bodies:
                name = str(body["metadata"]["name"])
                if isinstance(event, watch.Changed) and event.type == "DELETED":
                    self.tasks.discard(name)
                    continue
                if name not in self.tasks:
                    self.created += 1
                self.tasks.add(name)
                run_id = agent_status.wanted_run(body, done=self.answered.get(name))
                if run_id is None or body["spec"].get("nodeName") in self.silent:
                    continue
                self.answered[name] = run_id
                job = asyncio.create_task(self._answer(gate, body, run_id))
                pending.add(job)
                job.add_done_callback(pending.discard)

    async def _answer(self, gate: asyncio.Semaphore, body: Mapping[str, Any], run_id: str) -> None:
        spec = body["spec"]
        generation = int(spec.get("policyGeneration", 1))
        trigger = str(spec.get("trigger", "runnow"))
        async with gate:
            now = datetime.datetime.now(datetime.UTC)
            started = agent_status.started(
                {}, run_id=run_id, trigger=trigger, generation=generation, now=now
            )
            await self._patch(body, started)
            fails = spec.get("nodeName") in self.failing
            report = {"dryRun": True, "imagesSeen": 20, "removedImages": 3}
            report |= {"removedBytes": 30_000_000, "results": []}
            finished = agent_status.finished(
                started,
                run_id=run_id,
                trigger=trigger,
                reason=(
                    agent_status.Reason.REMOVALS_FAILED if fails else agent_status.Reason.SUCCEEDED
                ),
                message="bench: simulated failure" if fails else "bench: done",
                report=report,
                generation=generation,
                started_at=now,
                now=datetime.datetime.now(datetime.UTC),
            )
            await self._patch(body, finished)

    async def _patch(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        name = body["metadata"]["name"]
        try:
            await self.client.merge_patch(resources.Task.Status, name, {"status": dict(status)})
        except KubeError as error:  # deleted meanwhile (its policy went): as an agent, go on
            self.errors.append(str(error))
