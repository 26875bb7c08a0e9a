"""The node CLI's commands: observe the node, plan, and (for prune) execute."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys

from imageprune.node import executor, inventory, planner, progress, render, usage
from imageprune.policy.selection import Selection
from imageprune_cri import CriClient


@dataclasses.dataclass(frozen=True)
class Observation:
    snapshot: inventory.Snapshot
    records: dict[str, usage.UsageRecord]
    plan: planner.Plan


async def _observe(cri: CriClient, args: argparse.Namespace, selection: Selection) -> Observation:
    """Read the node, update the usage records, and plan under `selection`."""
    needs_created = selection.older_than is not None or selection.keep_latest_per_repository > 0
    snapshot = await inventory.take(cri, with_created_at=needs_created)
    now = datetime.datetime.now(datetime.UTC)
    store = usage.UsageStore(args.state_dir / "usage.json")
    records = usage.observe(
        store.load(), images=snapshot.images, containers=snapshot.containers, now=now
    )
    try:
        store.save(records)
    except OSError as err:
        # Not fatal: this run still plans from what it observed; age clocks just
        # will not survive it. Say so, because --unused-for depends on them.
        print(
            f"imageprune: warning: cannot save usage records in {args.state_dir}: "
            f"{err.strerror}; use --state-dir",
            file=sys.stderr,
        )
    disk = snapshot.disk
    plan = planner.plan(
        images=snapshot.images,
        containers=snapshot.containers,
        sandbox_images=snapshot.sandbox_images,
        usage=records,
        disk=planner.DiskUsage(disk.capacity_bytes, disk.fs_used_bytes) if disk else None,
        selection=selection,
        now=now,
    )
    return Observation(snapshot, records, plan)


async def images(args: argparse.Namespace, selection: Selection) -> int:
    """Returns 0: listing has no failures to count (same shape as prune)."""
    async with CriClient.connect(args.runtime_endpoint, timeout=args.timeout) as cri:
        observed = await _observe(cri, args, selection)
    render.images(observed.plan, observed.records, output=args.output, stream=sys.stdout)
    return 0


async def prune(args: argparse.Namespace, selection: Selection) -> int:
    """Returns the number of failed removals."""
    async with CriClient.connect(args.runtime_endpoint, timeout=args.timeout) as cri:
        observed = await _observe(cri, args, selection)
        removable = observed.plan.removable
        disk_before = observed.snapshot.disk
        bar = None
        if args.output == "text" and len(removable) > 20:
            bar = progress.Progress(
                len(removable), label="Would remove" if args.dry_run else "Removing"
            )
        report = await executor.execute(
            cri,
            removable,
            dry_run=args.dry_run,
            concurrency=args.concurrency,
            on_result=bar,
        )
    freed_on_disk = None
    if disk_before is not None and not args.dry_run:
        _, used_after = inventory.statvfs_used(disk_before.mountpoint)
        freed_on_disk = disk_before.fs_used_bytes - used_after
    render.prune_report(
        observed.plan, report, freed_on_disk=freed_on_disk, output=args.output, stream=sys.stdout
    )
    return len(report.failed)
