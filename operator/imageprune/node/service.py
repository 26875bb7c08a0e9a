"""The node engine's use cases, called alike by the CLI and the agent: observe the
node (and record image usage), and prune it. Keyword arguments only; nothing here
parses flags or prints: warnings go to the log."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Callable

from imageprune.node import disk, executor, inventory, planner, statelock, usage
from imageprune.policy.selection import Selection
from imageprune_cri import CriClient

log = logging.getLogger("imageprune.service")


@dataclasses.dataclass(frozen=True)
class Observation:
    snapshot: inventory.Snapshot
    records: dict[str, usage.UsageRecord]
    plan: planner.Plan
    now: datetime.datetime


@dataclasses.dataclass(frozen=True)
class PruneRun:
    observation: Observation
    report: executor.Report
    # The image filesystem measured again after the removals; None for a dry run or
    # when it could not be measured. Other writers share it, so the delta is a hint.
    disk_after: disk.DiskUsage | None
    finished_at: datetime.datetime


async def observe(
    cri: CriClient, *, selection: Selection, store: usage.UsageStore, now: datetime.datetime
) -> Observation:
    """Read the node, update and save the usage records, and plan under `selection`."""
    observed, saving = await _observe(cri, selection=selection, store=store, now=now)
    await saving
    return observed


async def _observe(
    cri: CriClient, *, selection: Selection, store: usage.UsageStore, now: datetime.datetime
) -> tuple[Observation, asyncio.Future[None]]:
    """observe(), with the saving of the records still under way: the caller awaits
    it when it suits. Saving means two fsyncs, so it runs in a thread, off the event
    loop, while the run plans and removes from the records in memory."""
    snapshot = await inventory.take(cri, with_created_at=selection.needs_created_at)
    records = usage.observe(
        store.load(), images=snapshot.images, containers=snapshot.containers, now=now
    )
    saving = asyncio.ensure_future(asyncio.to_thread(_save, store, records))
    plan = planner.plan(
        images=snapshot.images,
        containers=snapshot.containers,
        sandbox_images=snapshot.sandbox_images,
        usage=records,
        disk=snapshot.disk,
        selection=selection,
        now=now,
    )
    for pattern in plan.unmatched_excludes:
        # A protection that protects nothing is often a typo; say so every run.
        log.warning("exclude pattern %r matches no image on this node", pattern)
    return Observation(snapshot, records, plan, now), saving


async def record_usage(
    cri: CriClient, *, store: usage.UsageStore, now: datetime.datetime
) -> dict[str, usage.UsageRecord]:
    """Note which images containers use right now, without planning: called between
    runs, so that unusedFor counts from an image's real last use."""
    images, containers = await asyncio.gather(cri.list_images(), cri.list_containers())
    records = usage.observe(store.load(), images=images, containers=containers, now=now)
    _save(store, records)
    return records


def _save(store: usage.UsageStore, records: dict[str, usage.UsageRecord]) -> None:
    try:
        store.save(records)
    except OSError as err:
        # Not fatal: planning goes on from what was observed; age clocks just will
        # not survive, and unusedFor depends on them.
        log.warning(
            "cannot save usage records in %s: %s; image ages will not survive a restart",
            store.path.parent,
            err.strerror,
        )


async def prune(
    cri: CriClient,
    *,
    selection: Selection,
    store: usage.UsageStore,
    now: datetime.datetime,
    dry_run: bool,
    concurrency: int | None,
    lock: statelock.StateLock,
    on_plan: Callable[[planner.Plan], None] | None = None,
    on_result: executor.Progress | None = None,
    stop: asyncio.Event | None = None,
) -> PruneRun:
    """Observe, then remove what the plan allows (re-checking each image's users
    right before its removal), `concurrency` at a time (None: the executor's default
    width for the plan's size). `on_plan` hears the plan before any removal.

    A real run holds `lock` from before it observes until its last removal, so two
    prunes on one node never plan from the same listing (statelock.LockError when it
    cannot be had). Setting `stop` sends no further removal; the report then lists
    the rest as NotAttempted."""
    held: contextlib.AbstractAsyncContextManager[object] = (
        contextlib.nullcontext() if dry_run else lock
    )
    async with held:
        observed, saving = await _observe(cri, selection=selection, store=store, now=now)
        try:
            if on_plan:
                on_plan(observed.plan)
            report = await executor.execute(
                cri,
                observed.plan.removable,
                dry_run=dry_run,
                concurrency=concurrency,
                on_result=on_result,
                stop=stop,
            )
            if report.with_outcome(executor.Outcome.UNKNOWN):
                report = await executor.confirm_unknown(cri, report)
        finally:
            await saving  # within the lock: the next prune reads what this one wrote
        return PruneRun(
            observed,
            report,
            None if dry_run else _measure_again(observed.snapshot.disk),
            datetime.datetime.now(datetime.UTC),
        )


def _measure_again(before: disk.DiskUsage | None) -> disk.DiskUsage | None:
    if before is None or before.mountpoint is None:
        return None
    try:
        return disk.measure(before.mountpoint)
    except OSError as err:
        log.warning("cannot stat image filesystem %s: %s", before.mountpoint, err)
        return None
