"""A policy's spec.schedule and spec.timeZone, checked and turned into ticks. Checked
by parse_spec too, so that `imageprune prune --policy` refuses a schedule the operator
refuses."""

from __future__ import annotations

import dataclasses
import datetime
import zoneinfo
from types import ModuleType

from imageprune.policy import selection

_ALIASES = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)


_SOME_MOMENT = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


class ScheduleError(selection.PolicyError):
    """spec.schedule or spec.timeZone cannot be used."""


@dataclasses.dataclass(frozen=True, slots=True)
class Cron:
    expression: str
    zone: zoneinfo.ZoneInfo

    def latest(
        self, *, after: datetime.datetime, now: datetime.datetime
    ) -> datetime.datetime | None:
        """The latest tick t with after < t <= now (only the latest: a catch-up after
        downtime runs once), or None."""
        start = now.astimezone(self.zone).replace(microsecond=0) + datetime.timedelta(seconds=1)
        tick = _croniter().croniter(self.expression, start).get_prev(datetime.datetime)
        tick = tick.astimezone(datetime.UTC)
        return tick if after < tick <= now else None

    def following(self, moment: datetime.datetime) -> datetime.datetime:
        """The first tick strictly after `moment`."""
        start = moment.astimezone(self.zone)
        tick: datetime.datetime = (
            _croniter().croniter(self.expression, start).get_next(datetime.datetime)
        )
        return tick.astimezone(datetime.UTC)


def parse_cron(schedule: str, time_zone: str | None) -> Cron:
    """A 5-field cron expression (or @hourly, @daily...) in an IANA zone (default UTC).
    croniter alone would also take a 6th (seconds) field, which Kubernetes cron does not."""
    fields = schedule.split()
    if not (len(fields) == 5 or (len(fields) == 1 and fields[0] in _ALIASES)):
        raise ScheduleError(
            "spec.schedule",
            f"{schedule!r} must have 5 fields (minute hour day-of-month month day-of-week),"
            " e.g. '0 3 * * *', or be one of @hourly, @daily, @weekly, @monthly",
        )
    croniter = _croniter()
    if not croniter.croniter.is_valid(schedule):
        raise ScheduleError("spec.schedule", f"{schedule!r} is not a valid cron expression")
    try:
        # Valid, yet never due (February 30th): croniter raises on every tick asked.
        croniter.croniter(schedule, _SOME_MOMENT).get_next(datetime.datetime)
    except croniter.CroniterBadDateError:
        raise ScheduleError("spec.schedule", f"{schedule!r} never fires") from None
    try:
        zone = zoneinfo.ZoneInfo(time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            "spec.timeZone",
            f"unknown time zone {time_zone!r}; expected an IANA name like Europe/Paris",
        ) from None
    return Cron(schedule, zone)


def _croniter() -> ModuleType:
    """croniter, imported on first use: the agent imports this module (through
    api.policy) but never reads a schedule, and croniter with dateutil is 0.8 MiB of it."""
    import croniter  # noqa: PLC0415

    return croniter
