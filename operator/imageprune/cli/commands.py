"""The CLI's commands: call the node service, render what it found or did."""

from __future__ import annotations

import argparse
import datetime
import sys

from imageprune.cli import interrupts, progress, render
from imageprune.node import executor, planner, service, statelock, usage
from imageprune.policy.selection import Selection
from imageprune_cri import CriClient

# Below this many removals a progress bar is noise.
_PROGRESS_FROM = 20


def _store(args: argparse.Namespace) -> usage.UsageStore:
    return usage.UsageStore(args.state_dir / "usage.json")


async def images(
    args: argparse.Namespace, selection: Selection, _signals: interrupts.Interrupts
) -> int:
    """Returns 0: listing has no failures to count (same shape as prune)."""
    async with CriClient.connect(args.runtime_endpoint, timeout=args.timeout) as cri:
        observed = await service.observe(
            cri, selection=selection, store=_store(args), now=datetime.datetime.now(datetime.UTC)
        )
    render.images(observed.plan, observed.records, output=args.output, stream=sys.stdout)
    return 0


async def prune(
    args: argparse.Namespace, selection: Selection, signals: interrupts.Interrupts
) -> int:
    """Returns the number of images the run meant to remove and may not have."""
    bar: progress.Progress | None = None

    def start_progress(plan: planner.Plan) -> None:
        nonlocal bar
        signals.arm()  # from here on, a signal stops the removals and we report
        if args.output == "text" and len(plan.removable) > _PROGRESS_FROM:
            label = "Would remove" if args.dry_run else "Removing"
            bar = progress.Progress(len(plan.removable), label=label)

    def advance(result: executor.Result) -> None:
        if bar is not None:
            bar(result)

    async with CriClient.connect(args.runtime_endpoint, timeout=args.timeout) as cri:
        run = await service.prune(
            cri,
            selection=selection,
            store=_store(args),
            now=datetime.datetime.now(datetime.UTC),
            dry_run=args.dry_run,
            concurrency=args.concurrency,
            lock=statelock.StateLock(args.state_dir, timeout=args.lock_timeout),
            on_plan=start_progress,
            on_result=advance,
            stop=signals.stop,
        )
    render.prune_report(run, output=args.output, stream=sys.stdout)
    return len(run.report.failed)
