"""A finished prune (service.PruneRun) built by hand, for tests of what is reported
about it: five removable images with the outcomes a test chooses, one excluded."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from imageprune.node import disk, executor, inventory, planner, service
from imageprune_cri import types

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
IMAGES = tuple(
    types.Image(id=f"sha256:{n:064x}", repo_tags=(f"docker.io/library/i{n}:1",), size=100 * n)
    for n in range(1, 6)
)
KEPT = types.Image(id="sha256:" + "f" * 64, repo_tags=("docker.io/library/kept:1",), size=7)


def prune_run(
    outcomes: Sequence[tuple[executor.Outcome, str]], *, dry_run: bool
) -> service.PruneRun:
    """`outcomes` pairs (outcome, error kind) with IMAGES in order; result details
    are "d1".."d5". The image filesystem goes from 900 to 700 of 1000 bytes."""
    before = disk.DiskUsage(capacity_bytes=1000, used_bytes=900, mountpoint="/var/lib/x")
    snapshot = inventory.Snapshot(
        images=(*IMAGES, KEPT),
        containers=(),
        sandbox_images=frozenset(),
        disk=before,
    )
    plan = planner.Plan(
        verdicts=(
            *(planner.Verdict(i, planner.Reason.REMOVABLE, "") for i in IMAGES),
            planner.Verdict(KEPT, planner.Reason.EXCLUDED, "matches kept*"),
        ),
        removable=IMAGES,
        unmatched_excludes=("typo*",),
    )
    results = tuple(
        executor.Result(image, outcome, f"d{n}", error_kind=kind)
        for n, (image, (outcome, kind)) in enumerate(zip(IMAGES, outcomes, strict=True), 1)
    )
    return service.PruneRun(
        service.Observation(snapshot, {}, plan, T0),
        executor.Report(dry_run=dry_run, results=results),
        None if dry_run else disk.DiskUsage(1000, 700, "/var/lib/x"),
        T0 + datetime.timedelta(seconds=3),
    )
