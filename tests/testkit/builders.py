"""Builders for the values unit tests judge: images, containers, usage records,
selections and plans. One fixed clock (`NOW`), so "3h ago" reads the same in
every test; images are numbered, so `image_id(3)` names `image(3)`."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from imageprune.node import planner
from imageprune.node.disk import DiskUsage
from imageprune.node.usage import UsageRecord
from imageprune.policy.references import Pattern
from imageprune.policy.selection import Selection
from imageprune_cri.types import Container, ContainerState, Image

NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
GIB = 2**30

# A whole policy manifest, as a person would write one for `--policy`.
POLICY_MANIFEST = """\
apiVersion: imageprune.io/v1alpha1
kind: ImagePrunePolicy
metadata:
  name: weekly
spec:
  unusedFor: 7d
  exclude: ["registry.k8s.io/*"]
  schedule: "0 3 * * *"
"""


def image_id(n: int) -> str:
    """The ID of image number `n`, as containerd reports it."""
    return f"sha256:{n:064x}"


def digest(n: int) -> str:
    """A manifest digest, distinct from every image ID."""
    return f"sha256:{n + 10**6:064x}"


def image(
    n: int,
    *tags: str,
    size: int = GIB,
    created: datetime.datetime | None = None,
    pinned: bool = False,
    digests: tuple[str, ...] = (),
) -> Image:
    return Image(
        id=image_id(n),
        repo_tags=tags,
        repo_digests=digests,
        size=size,
        pinned=pinned,
        created_at=created,
    )


def container(
    name: str,
    *,
    image: str = "",
    image_ref: str = "",
    state: ContainerState = ContainerState.RUNNING,
    container_id: str | None = None,
) -> Container:
    """A container made with `image` (the reference it was created with) that the
    runtime resolved to `image_ref`."""
    return Container(
        id=container_id or f"id-{name}",
        name=name,
        pod_sandbox_id="pod",
        image=image,
        image_ref=image_ref,
        state=state,
        created_at=NOW,
    )


def record(
    first_seen: datetime.timedelta, last_used: datetime.timedelta | None = None
) -> UsageRecord:
    """A usage record for an image first seen `first_seen` ago and last used
    `last_used` ago (None: never seen in use)."""
    return UsageRecord(NOW - first_seen, None if last_used is None else NOW - last_used)


def selection(
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    **fields: Any,
) -> Selection:
    """A Selection with patterns given as text."""
    return Selection(
        include=tuple(map(Pattern, include)), exclude=tuple(map(Pattern, exclude)), **fields
    )


def make_plan(
    images: Sequence[Image],
    *,
    containers: Sequence[Container] = (),
    sandbox_images: tuple[str, ...] = (),
    usage: Mapping[str, UsageRecord] | None = None,
    disk: DiskUsage | None = None,
    selection: Selection = Selection(),  # noqa: B008 (frozen, so sharing it is safe)
) -> planner.Plan:
    """Plan at `NOW`; without `usage`, every image was first seen 30 days ago and
    never used."""
    if usage is None:
        usage = {i.id: record(30 * DAY) for i in images}
    return planner.plan(
        images=images,
        containers=containers,
        sandbox_images=sandbox_images,
        usage=usage,
        disk=disk,
        selection=selection,
        now=NOW,
    )


def reasons(plan: planner.Plan) -> dict[str, planner.Reason]:
    return {v.image.id: v.reason for v in plan.verdicts}


def verdict(plan: planner.Plan, n: int) -> planner.Verdict:
    """The verdict on image number `n`."""
    [found] = [v for v in plan.verdicts if v.image.id == image_id(n)]
    return found


def removed(plan: planner.Plan) -> list[int]:
    """Image numbers in removal order."""
    return [int(i.id.removeprefix("sha256:"), 16) for i in plan.removable]
