"""The CLI's commands: call the node service, render what it found or did."""

from __future__ import annotations

import argparse
import datetime
import sys

from imageprune import streams
from imageprune.cli import flags, interrupts, progress, render
from imageprune.node import executor, planner, service, statelock, usage
from imageprune_cri import CriClient

# Below this many removals a progress bar is noise.
_PROGRESS_FROM = 20


def _store(args: argparse.Namespace) -> usage.UsageStore:
    return usage.UsageStore(args.state_dir / "usage.json")


def _note(text: str | None) -> None:
    if text is not None:
        print(f"imageprune: note: {text}", file=sys.stderr)


async def images(
    args: argparse.Namespace, request: flags.Request, _signals: interrupts.Interrupts
) -> int:
    """Returns 0: listing has no failures to count (same shape as prune)."""
    _note(request.cluster_only)
    async with CriClient.connect(args.runtime_endpoint, timeout=args.timeout) as cri:
        observed = await service.observe(
            cri,
            selection=request.selection,
            store=_store(args),
            now=datetime.datetime.now(datetime.UTC),
        )
    streams.deliver(
        lambda stream: render.images(
            observed.plan, observed.records, output=args.output, stream=stream
        )
    )
    return 0


async def prune(
    args: argparse.Namespace, request: flags.Request, signals: interrupts.Interrupts
) -> int:
    """Returns the number of images the run meant to remove and may not have."""
    bar: progress.Progress | None = None
    dry_run = args.dry_run or request.removes_nothing is not None
    _note(request.cluster_only)
    if not args.dry_run:
        _note(request.removes_nothing)

    def start_progress(plan: planner.Plan) -> None:
        nonlocal bar
        signals.arm()  # from here on, a signal stops the removals and we report
        if args.output == "text" and len(plan.removable) > _PROGRESS_FROM:
            label = "Would remove" if dry_run else "Removing"
            bar = progress.Progress(len(plan.removable), label=label)

    def advance(result: executor.Result) -> None:
        if bar is not None:
            bar(result)

    async with CriClient.connect(args.runtime_endpoint, timeout=args.timeout) as cri:
        run = await service.prune(
            cri,
            selection=request.selection,
            store=_store(args),
            now=datetime.datetime.now(datetime.UTC),
            dry_run=dry_run,
            concurrency=args.concurrency,
            lock=statelock.StateLock(
                args.state_dir, timeout=args.lock_timeout, runtime_socket=cri.socket_path
            ),
            on_plan=start_progress,
            on_result=advance,
            stop=signals.stop,
        )
    streams.deliver(lambda stream: render.prune_report(run, output=args.output, stream=stream))
    return len(run.report.failed)
