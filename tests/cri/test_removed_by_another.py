"""kubelet's image GC works on the same images as imageprune: an image it removes between
imageprune's plan and imageprune's removal is gone, as the plan wanted, and no failure
(real containerd 1.6 and 2.x: RemoveImage of an absent image answers OK)."""

from __future__ import annotations

import pytest

from imageprune.node import executor, inventory
from imageprune_cri import CriClient
from testkit import builders, oci
from testkit.containerd import ContainerdNode

pytestmark = pytest.mark.cri


async def test_an_image_removed_after_the_plan_counts_as_removed(
    containerd: ContainerdNode,
) -> None:
    gone, other = containerd.add_images(
        *(oci.ImageSpec(repo_tags=(f"docker.io/library/{name}:1",)) for name in ("gone", "other"))
    )
    async with CriClient(containerd.endpoint) as cri:
        snapshot = await inventory.take(cri, with_created_at=False)
        plan = builders.make_plan(
            snapshot.images,
            containers=snapshot.containers,
            sandbox_images=tuple(snapshot.sandbox_images),
        )
        assert {gone.id, other.id} <= {i.id for i in plan.removable}
        async with CriClient(containerd.endpoint) as kubelet:  # another CRI client
            await kubelet.remove_image(gone.id)
        containerd.wait_image(gone.id, present=False)
        report = await executor.execute(cri, plan.removable, dry_run=False)

    outcomes = {r.image.id: r for r in report.results}
    assert outcomes[gone.id].outcome is executor.Outcome.REMOVED
    assert outcomes[other.id].outcome is executor.Outcome.REMOVED
    assert report.failed == []
