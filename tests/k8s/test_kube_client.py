"""imageprune.kube against the real kube-apiserver: credentials from a kubeconfig, get,
list, merge patch of /status, watch streams, resume without re-listing, 410 Gone."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from imageprune.api import names
from imageprune.kube import config
from imageprune.kube.client import Client
from imageprune.kube.errors import ApiError, Gone, Unreachable
from imageprune.kube.watch import Changed, Listed, Watcher
from testkit.agent import create_task, request_run
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s

TASKS = f"/apis/{names.GROUP}/{names.VERSION}/{names.TASK_PLURAL}"


@pytest.fixture(scope="module")
def plane(kube_control_plane: ControlPlane, imageprune_crds: list[str]) -> ControlPlane:
    return kube_control_plane


@pytest.fixture
def client(plane: ControlPlane) -> Client:
    return Client(config.load(str(plane.kubeconfig_path)), timeout=10)


def _task(plane: ControlPlane) -> tuple[str, str]:
    node = f"node-{uuid.uuid4().hex[:8]}"
    name = create_task(plane, policy="kube", node=node, run_id="r1", selection={})
    return name, node


async def test_get_list_and_merge_patch_status(plane: ControlPlane, client: Client) -> None:
    name, node = _task(plane)
    listing = await client.list(TASKS, field_selector=f"spec.nodeName={node}")
    assert [i["metadata"]["name"] for i in listing["items"]] == [name]
    task = await client.get(f"{TASKS}/{name}")
    version = task["metadata"]["resourceVersion"]

    patched = await client.merge_patch(
        f"{TASKS}/{name}/status",
        {"metadata": {"resourceVersion": version}, "status": {"runId": "r1", "message": "hi"}},
    )
    assert patched["status"] == {"runId": "r1", "message": "hi"}
    # The same precondition again is stale now: the apiserver refuses it.
    with pytest.raises(ApiError) as stale:
        await client.merge_patch(
            f"{TASKS}/{name}/status",
            {"metadata": {"resourceVersion": version}, "status": {"message": "late"}},
        )
    assert stale.value.status == 409
    # null deletes a field.
    cleared = await client.merge_patch(f"{TASKS}/{name}/status", {"status": {"message": None}})
    assert cleared["status"] == {"runId": "r1"}


async def test_errors_are_classified(plane: ControlPlane, client: Client) -> None:
    with pytest.raises(ApiError) as missing:
        await client.get(f"{TASKS}/no-such-task")
    assert (missing.value.status, missing.value.reason) == (404, "NotFound")
    assert not missing.value.retryable
    nobody = Client(config.load(str(plane.user_kubeconfig("nobody"))), timeout=10)
    with pytest.raises(ApiError, match="cannot list resource") as forbidden:
        await nobody.list(TASKS)
    assert forbidden.value.status == 403
    closed = config.Credentials(server="https://127.0.0.1:1", source="test")
    with pytest.raises(Unreachable, match=r"cannot reach the apiserver at https://127\.0\.0\.1:1"):
        await Client(closed, timeout=5).list(TASKS)


async def test_a_too_old_resource_version_is_gone(client: Client) -> None:
    with pytest.raises(Gone):
        async for _ in client.watch(TASKS, resource_version="1", timeout_seconds=5):
            pass


async def test_the_watcher_resumes_across_server_ended_watches(
    plane: ControlPlane, client: Client
) -> None:
    name, node = _task(plane)
    # Watches the server ends after 1-2 s: the changes below span several of them.
    watcher = Watcher(client, TASKS, field_selector=f"spec.nodeName={node}", min_watch_seconds=1)
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
