"""The CRI client against real containerd, both 1.6 (Debian) and 2.x."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from imageprune_cri import CriClient, RuntimeUnavailable, types
from testkit.containerd import SANDBOX_IMAGE, ContainerdNode, Factory

pytestmark = pytest.mark.cri


async def test_lists_an_imported_image(containerd: ContainerdNode) -> None:
    built = containerd.add_image(
        repo_tags=["docker.io/library/app:1", "docker.io/library/app:latest"]
    )
    async with CriClient(containerd.endpoint) as cri:
        images = {i.id: i for i in await cri.list_images()}
    assert built.id in images
    image = images[built.id]
    assert set(image.repo_tags) == {"docker.io/library/app:1", "docker.io/library/app:latest"}
    assert image.size > 0
    assert image.pinned is False


async def test_container_states_and_image_refs(
    containerd: ContainerdNode,
) -> None:
    built = containerd.add_image(repo_tags=["docker.io/library/web:1"])
    sandbox = containerd.run_sandbox("pod")
    running = containerd.create_container(
        sandbox, "pod", name="running", image="docker.io/library/web:1"
    )
    created = containerd.create_container(
        sandbox, "pod", name="created", image=built.id, start=False
    )
    exited = containerd.create_container(sandbox, "pod", name="exited", image=built.id)
    containerd.stop_container(exited)
    async with CriClient(containerd.endpoint) as cri:
        containers = {c.id: c for c in await cri.list_containers()}
        sandboxes = await cri.list_pod_sandboxes()
    assert containers[running].state is types.ContainerState.RUNNING
    assert containers[created].state is types.ContainerState.CREATED
    assert containers[exited].state is types.ContainerState.EXITED
    assert {c.image_ref for c in containers.values()} == {built.id}
    assert containers[running].image == "docker.io/library/web:1"
    assert containers[running].name == "running"
    assert containers[running].pod_sandbox_id == sandbox
    assert [s.id for s in sandboxes] == [sandbox]


async def test_pinned_field(containerd: ContainerdNode) -> None:
    built = containerd.add_image(repo_tags=["docker.io/library/keep:1"])
    containerd.pin("docker.io/library/keep:1")
    async with CriClient(containerd.endpoint) as cri:
        status = await cri.image_status(built.id)
    assert status is not None
    # containerd 1.6 never sets `pinned` (field-facts); 2.x reports the label.
    assert status.pinned is (containerd.flavour.name != "1.6")


async def test_status_reports_sandbox_image(containerd: ContainerdNode) -> None:
    async with CriClient(containerd.endpoint) as cri:
        status = await cri.status()
        version = await cri.version()
    # containerd 1.x reports its sandbox image in the verbose Status; 2.x does not
    # (it pins the image instead), so the planner also keeps every pinned image.
    expected = SANDBOX_IMAGE if containerd.flavour.name == "1.6" else None
    assert status.sandbox_image == expected
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"


async def test_sandbox_images_found_on_both_versions(containerd: ContainerdNode) -> None:
    async with CriClient(containerd.endpoint) as cri:
        before = await cri.sandbox_images()
        containerd.run_sandbox("pod")
        after = await cri.sandbox_images()
    # 1.6 names its configured image even before any pod; 2.x only through pods.
    assert before == ({SANDBOX_IMAGE} if containerd.flavour.name == "1.6" else frozenset())
    assert after == {SANDBOX_IMAGE}


async def test_image_status_has_creation_time(
    containerd: ContainerdNode,
) -> None:
    created = datetime.datetime(2023, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    built = containerd.add_image(repo_tags=["docker.io/library/old:1"], created=created)
    async with CriClient(containerd.endpoint) as cri:
        by_tag = await cri.image_status("docker.io/library/old:1")
        missing = await cri.image_status("docker.io/library/nope:1")
        filled = await cri.with_created_at(await cri.list_images())
    assert by_tag is not None
    assert by_tag.id == built.id
    assert by_tag.created_at == created
    assert missing is None
    assert {i.id: i.created_at for i in filled}[built.id] == created


async def test_remove_image_removes_every_tag(containerd: ContainerdNode) -> None:
    built = containerd.add_image(repo_tags=["docker.io/library/gone:1", "docker.io/library/gone:2"])
    async with CriClient(containerd.endpoint) as cri:
        await cri.remove_image("docker.io/library/gone:1")
        ids = {i.id for i in await cri.list_images()}
        await cri.remove_image(built.id)  # already gone: not an error
    assert built.id not in ids


async def test_image_fs_info(containerd: ContainerdNode) -> None:
    async with CriClient(containerd.endpoint) as cri:
        filesystems = await cri.image_fs_info()
    assert filesystems
    assert filesystems[0].mountpoint.endswith("overlayfs")


async def test_two_instances_side_by_side(
    containerd_factory: Factory,
) -> None:
    first = containerd_factory("1.6")
    second = containerd_factory("1.6")
    only_first = first.add_image(repo_tags=["docker.io/library/first:1"])
    async with CriClient(first.endpoint) as a, CriClient(second.endpoint) as b:
        assert only_first.id in {i.id for i in await a.list_images()}
        assert only_first.id not in {i.id for i in await b.list_images()}


async def test_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    async with CriClient(f"unix://{tmp_path}/nothing.sock", timeout=2) as cri:
        with pytest.raises(RuntimeUnavailable, match="no CRI runtime answers at unix://"):
            await cri.list_images()
