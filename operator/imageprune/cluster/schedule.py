"""When a policy runs: its cron schedule in its time zone, the run-now annotation, and, for
a policy without a schedule, its creation and every spec change (a new generation).

Restart safety: every decision derives from what the policy status (and the run-now
annotation) already record, and a started run is persisted there before any task is
touched. So an operator restarted at any point starts at most one run for a missed cron
tick (the latest), and never the same run twice."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib

from imageprune.api.cron import parse_cron
from imageprune.api.policy import PolicySpec, Trigger
from imageprune.cluster import observed


@dataclasses.dataclass(frozen=True, slots=True)
class Recorded:
    """What the policy already records about its runs."""

    created: datetime.datetime  # metadata.creationTimestamp: cron ticks count from here
    generation: int
    observed_generation: int | None  # the generation the operator last acted on
    last_run: observed.Run | None
    last_schedule_time: datetime.datetime | None  # the cron tick of the last scheduled run
    run_now: str | None  # the run-now annotation's value
    run_now_handled: str | None  # the last value acted on


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    start: observed.Run | None  # a run to start now, None for none
    last_schedule_time: datetime.datetime | None
    next_run_time: datetime.datetime | None  # None: no schedule, or suspended
    run_now_handled: str | None  # to record (unchanged when nothing new)
    ignored_run_now: bool = False  # a new run-now value arrived while suspended


def decide(spec: PolicySpec, recorded: Recorded, *, now: datetime.datetime) -> Decision:
    """Whether to start a run now, and why. When several triggers are due at once, one
    run covers them all (run-now first, then a spec change, then the cron tick)."""
    cron = parse_cron(spec.schedule, spec.time_zone) if spec.schedule else None
    fresh_run_now = recorded.run_now is not None and recorded.run_now != recorded.run_now_handled
    if spec.suspend:
        # Missed ticks stay missed until resumed, then the latest one runs (as a CronJob's).
        return Decision(
            start=None,
            last_schedule_time=recorded.last_schedule_time,
            next_run_time=None,
            run_now_handled=recorded.run_now,
            ignored_run_now=fresh_run_now and not _started_by(recorded, recorded.run_now),
        )
    tick = None
    if cron is not None:
        tick = cron.latest(after=recorded.last_schedule_time or recorded.created, now=now)
    last_schedule_time = tick or recorded.last_schedule_time
    next_run_time = cron.following(now) if cron else None

    trigger: Trigger | None = None
    moment, suffix = now, ""
    if fresh_run_now and not _started_by(recorded, recorded.run_now):
        trigger, suffix = Trigger.RUN_NOW, _digest(recorded.run_now or "")
    elif cron is None and recorded.generation != recorded.observed_generation:
        trigger = Trigger.CREATE if recorded.last_run is None else Trigger.SPEC_CHANGE
        suffix = f"g{recorded.generation}"
    elif tick is not None:
        # Named after the tick, not the clock: the same tick always makes the same id.
        trigger, moment = Trigger.SCHEDULE, tick
    start = None
    if trigger is not None:
        start = observed.Run(run_id(moment, trigger, suffix), trigger, spec.mode, now)
    return Decision(start, last_schedule_time, next_run_time, recorded.run_now)


def run_id(moment: datetime.datetime, trigger: Trigger, suffix: str = "") -> str:
    """`20261129-030000-schedule`, `...-runnow-1a2b3c4d`, `...-specchange-g7`."""
    stamp = moment.astimezone(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return "-".join(part for part in (stamp, trigger.value.lower(), suffix) if part)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def _started_by(recorded: Recorded, run_now: str | None) -> bool:
    """The last run was started by this run-now value: the operator stopped between
    persisting the run and recording the value as handled."""
    run = recorded.last_run
    return (
        run is not None
        and run_now is not None
        and run.trigger is Trigger.RUN_NOW
        and run.id.endswith("-" + _digest(run_now))
    )
