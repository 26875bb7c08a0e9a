"""imageprune.kube against the real kube-apiserver: credentials from a kubeconfig, get,
list, merge patch of /status, watch streams, resume without re-listing, 410 Gone, a
silent connection noticed, answers bounded (but for a DeleteCollection's, dropped)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator

import pytest
from lightkube.generic_resource import create_namespaced_resource

from imageprune.api import names
from imageprune.kube import client as kube_client
from imageprune.kube import config
from imageprune.kube.client import Client
from imageprune.kube.errors import ApiError, Gone, Unreachable
from imageprune.kube.resources import Task
from imageprune.kube.watch import Changed, Listed, Watcher
from testkit.agent import create_task, request_run
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s
ConfigMap = create_namespaced_resource("", "v1", "ConfigMap", "configmaps")


@pytest.fixture(scope="module")
def plane(kube_control_plane: ControlPlane, imageprune_crds: list[str]) -> ControlPlane:
    return kube_control_plane


@pytest.fixture
async def client(plane: ControlPlane) -> AsyncIterator[Client]:
    client = Client(config.load(str(plane.kubeconfig_path)), timeout=10)
    yield client
    await client.close()


def _task(plane: ControlPlane) -> tuple[str, str]:
    node = f"node-{uuid.uuid4().hex[:8]}"
    name = create_task(plane, policy="kube", node=node, run_id="r1", selection={})
    return name, node


async def test_get_list_and_merge_patch_status(plane: ControlPlane, client: Client) -> None:
    name, node = _task(plane)
    items, _ = await client.list(Task, fields=f"spec.nodeName={node}")
    assert [i["metadata"]["name"] for i in items] == [name]
    task = await client.get(Task, name)
    version = task["metadata"]["resourceVersion"]

    patched = await client.merge_patch(
        Task.Status,
        name,
        {"metadata": {"resourceVersion": version}, "status": {"runId": "r1", "message": "hi"}},
    )
    assert patched["status"] == {"runId": "r1", "message": "hi"}
    # The same precondition again is stale now: the apiserver refuses it.
    with pytest.raises(ApiError) as stale:
        await client.merge_patch(
            Task.Status,
            name,
            {"metadata": {"resourceVersion": version}, "status": {"message": "late"}},
        )
    assert stale.value.status == 409
    # null deletes a field.
    cleared = await client.merge_patch(Task.Status, name, {"status": {"message": None}})
    assert cleared["status"] == {"runId": "r1"}


async def test_errors_are_classified(plane: ControlPlane, client: Client) -> None:
    with pytest.raises(ApiError) as missing:
        await client.get(Task, "no-such-task")
    assert (missing.value.status, missing.value.reason) == (404, "NotFound")
    assert not missing.value.retryable
    nobody = Client(config.load(str(plane.user_kubeconfig("nobody"))), timeout=10)
    with pytest.raises(ApiError, match="cannot list resource") as forbidden:
        await nobody.list(Task)
    await nobody.close()
    assert forbidden.value.status == 403
    closed = dataclasses.replace(
        config.load(str(plane.kubeconfig_path)), server="https://127.0.0.1:1"
    )
    with pytest.raises(Unreachable, match=r"cannot reach the apiserver at https://127\.0\.0\.1:1"):
        await Client(closed, timeout=5).list(Task)


async def test_a_too_old_resource_version_is_gone(client: Client) -> None:
    with pytest.raises(Gone):
        async for _ in client.watch(Task, resource_version="1", timeout_seconds=5):
            pass


async def test_the_watcher_resumes_across_server_ended_watches(
    plane: ControlPlane, client: Client
) -> None:
    name, node = _task(plane)
    # Watches the server ends after 1-2 s: the changes below span several of them.
    watcher = Watcher(client, Task, field_selector=f"spec.nodeName={node}", min_watch_seconds=1)
    seen: list[Listed | Changed] = []

    async def consume() -> None:
        async for event in watcher.events():
            seen.append(event)

    consumer = asyncio.create_task(consume())
    try:
        for run in ("r2", "r3", "r4"):
            await asyncio.sleep(2.5)
            await asyncio.to_thread(request_run, plane, name, run)
        await asyncio.sleep(1)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)

    assert isinstance(seen[0], Listed)
    assert [i["metadata"]["name"] for i in seen[0].items] == [name]
    assert not any(isinstance(e, Listed) for e in seen[1:])  # resumed, never re-listed
    runs = [e.object["spec"]["runId"] for e in seen[1:] if isinstance(e, Changed)]
    assert runs == ["r2", "r3", "r4"]


async def test_a_silent_watch_is_noticed(plane: ControlPlane) -> None:
    """The apiserver stops answering (SIGSTOP) with the watch open: the read deadline
    (the watch's timeoutSeconds plus the client's timeout) ends it, as Unreachable."""
    name, node = _task(plane)
    client = Client(config.load(str(plane.kubeconfig_path)), timeout=2)
    _, version = await client.list(Task, fields=f"spec.nodeName={node}")
    events = client.watch(
        Task, resource_version=version, timeout_seconds=1, fields=f"spec.nodeName={node}"
    )
    await asyncio.to_thread(request_run, plane, name, "r2")
    kind, _ = await anext(events)
    assert kind == "MODIFIED"
    apiserver = plane._processes[-1]
    assert apiserver.name == "kube-apiserver"
    os.kill(apiserver.popen.pid, signal.SIGSTOP)
    try:
        with pytest.raises(Unreachable, match="did not answer WATCH imageprunetasks in time"):
            async for _ in events:
                pass
    finally:
        os.kill(apiserver.popen.pid, signal.SIGCONT)
    await client.close()


async def test_answers_are_bounded(
    plane: ControlPlane, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _task(plane)
    monkeypatch.setattr(kube_client, "MAX_BODY", 512)
    with pytest.raises(Unreachable, match="exceeds 512"):
        await client.list(Task)


async def test_a_page_over_the_bound_lists_again_in_smaller_pages(
    plane: ControlPlane, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects near their maximum size: a page of 6 exceeds the bound, a page of 1 fits,
    and the listing comes whole in the smaller pages."""
    policy = f"pages-{uuid.uuid4().hex[:8]}"
    labels = {names.POLICY_LABEL: policy}
    for node in "abcdef":
        create_task(plane, policy=policy, node=node, run_id="r1", selection={})
    (one, *_), _ = await client.list(Task, labels=labels)
    monkeypatch.setattr(kube_client, "MAX_BODY", 2 * len(json.dumps(one)) + 500)
    with pytest.raises(Unreachable, match="exceeds"):
        await client.list(Task, labels=labels)  # one page: nothing smaller to try
    items, _ = await client.list(Task, labels=labels, chunk_size=6)
    assert sorted(item["spec"]["nodeName"] for item in items) == list("abcdef")


async def test_a_gzipped_answer_is_read_whole_and_bounded_inflated(
    plane: ControlPlane, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The apiserver gzips an answer over 128 KiB. 600 KB of repeated text compress to a
    few KB: the bound counts what they inflate to, not what crossed the wire."""
    namespace = f"gzip-{uuid.uuid4().hex[:8]}"
    plane.kubectl("create", "namespace", namespace)
    data = {f"k{i}": "imageprune " * 20_000 for i in range(3)}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": data}
    plane.kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(configmap))
    (item,), _ = await client.list(ConfigMap, namespace=namespace)
    assert item["data"] == data
    monkeypatch.setattr(kube_client, "MAX_BODY", 200_000)
    with pytest.raises(Unreachable, match="exceeds 200000"):
        await client.list(ConfigMap, namespace=namespace)


async def test_a_delete_collection_drops_its_answer(
    plane: ControlPlane, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The apiserver answers a DeleteCollection with every object it deleted: more than
    the bound here, yet it succeeds, as that answer is never held; an error still reads."""
    policy = f"dropped-{uuid.uuid4().hex[:8]}"
    for node in ("a", "b", "c"):
        create_task(plane, policy=policy, node=node, run_id="r1", selection={})
    monkeypatch.setattr(kube_client, "MAX_BODY", 512)
    await client.delete_collection(Task, labels={names.POLICY_LABEL: policy})
    monkeypatch.undo()
    items, _ = await client.list(Task, labels={names.POLICY_LABEL: policy})
    assert items == []
    with pytest.raises(ApiError) as refused:
        await client.delete_collection(Task, labels={"bad key!": "x"})
    assert refused.value.status == 400
