"""When runs start: cron in a time zone, catch-up after downtime (at most one run, never
twice), run-now, suspend, and create/spec change without a schedule."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageprune.api import cron
from imageprune.api.policy import Mode, PolicySpec, Trigger
from imageprune.cluster import observed, schedule

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning"),
]

UTC = datetime.UTC
CREATED = datetime.datetime(2026, 11, 29, 1, 0, 30, tzinfo=UTC)
MINUTE = datetime.timedelta(minutes=1)


def fresh(**overrides: object) -> schedule.Recorded:
    base = schedule.Recorded(
        created=CREATED,
        generation=1,
        observed_generation=None,
        last_run=None,
        last_schedule_time=None,
        run_now=None,
        run_now_handled=None,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def persist(recorded: schedule.Recorded, decision: schedule.Decision) -> schedule.Recorded:
    """What the operator writes into the status before touching tasks."""
    return dataclasses.replace(
        recorded,
        observed_generation=recorded.generation,
        last_run=decision.start or recorded.last_run,
        last_schedule_time=decision.last_schedule_time,
        run_now_handled=decision.run_now_handled,
    )


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 3 * * * *", "5 fields"),
        ("* * * *", "5 fields"),
        ("61 * * * *", "not a valid cron"),
        ("@often", "5 fields"),
        ("0 0 31 2 *", "never fires"),  # croniter takes it, then raises on every tick
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_bad_schedules_name_the_field(expression: str, problem: str) -> None:
    with pytest.raises(cron.ScheduleError, match=f"spec.schedule: .*{problem}"):
        cron.parse_cron(expression, None)


def test_unknown_time_zone_names_the_field() -> None:
    with pytest.raises(cron.ScheduleError, match=r"spec\.timeZone: unknown time zone"):
        cron.parse_cron("0 3 * * *", "Mars/Olympus")


def test_ticks_follow_the_time_zone() -> None:
    ticks = cron.parse_cron("0 3 * * *", "Europe/Paris")  # UTC+1 in November
    after = ticks.following(datetime.datetime(2026, 11, 29, 0, 0, tzinfo=UTC))
    assert after == datetime.datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    assert cron.parse_cron("@daily", None).following(CREATED) == datetime.datetime(
        2026, 11, 30, tzinfo=UTC
    )


def test_catch_up_after_downtime_runs_only_the_latest_missed_tick() -> None:
    spec = PolicySpec(schedule="0 * * * *")
    last = datetime.datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    now = datetime.datetime(2026, 11, 29, 7, 30, tzinfo=UTC)  # 03:00 to 07:00 were missed
    decision = schedule.decide(spec, fresh(last_schedule_time=last), now=now)
    assert decision.start is not None
    assert decision.start.trigger is Trigger.SCHEDULE
    assert decision.last_schedule_time == datetime.datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    assert decision.start.id == "20261129-070000-schedule"
    assert decision.next_run_time == datetime.datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    again = schedule.decide(spec, persist(fresh(last_schedule_time=last), decision), now=now)
    assert again.start is None


def test_a_scheduled_policy_does_not_run_on_create() -> None:
    spec = PolicySpec(schedule="0 3 * * *")
    decision = schedule.decide(spec, fresh(), now=CREATED + MINUTE)
    assert decision.start is None
    assert decision.next_run_time == datetime.datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def test_without_a_schedule_it_runs_on_create_and_on_each_spec_change() -> None:
    spec = PolicySpec()
    first = schedule.decide(spec, fresh(), now=CREATED)
    assert first.start is not None
    assert first.start.trigger is Trigger.CREATE
    assert first.start.id.endswith("-create-g1")
    recorded = persist(fresh(), first)
    assert schedule.decide(spec, recorded, now=CREATED + MINUTE).start is None
    changed = schedule.decide(spec, dataclasses.replace(recorded, generation=2), now=CREATED)
    assert changed.start is not None
    assert changed.start.trigger is Trigger.SPEC_CHANGE


def test_run_now_runs_once_per_value() -> None:
    spec = PolicySpec(schedule="0 3 * * *")
    recorded = fresh(observed_generation=1, run_now="2026-11-29T12:00")
    decision = schedule.decide(spec, recorded, now=CREATED)
    assert decision.start is not None
    assert decision.start.trigger is Trigger.RUN_NOW
    assert decision.run_now_handled == "2026-11-29T12:00"
    assert schedule.decide(spec, persist(recorded, decision), now=CREATED).start is None
    newer = dataclasses.replace(persist(recorded, decision), run_now="again")
    assert schedule.decide(spec, newer, now=CREATED).start is not None


def test_run_now_is_not_repeated_when_the_operator_stopped_before_marking_it() -> None:
    """The run was persisted, the run-now-handled annotation was not."""
    spec = PolicySpec()
    recorded = fresh(observed_generation=1, run_now="x")
    decision = schedule.decide(spec, recorded, now=CREATED)
    crashed = dataclasses.replace(persist(recorded, decision), run_now_handled=None)
    retry = schedule.decide(spec, crashed, now=CREATED + MINUTE)
    assert retry.start is None
    assert retry.run_now_handled == "x"


def test_suspend_starts_nothing_and_ignores_run_now() -> None:
    spec = PolicySpec(schedule="* * * * *", suspend=True)
    decision = schedule.decide(spec, fresh(run_now="now"), now=CREATED + 10 * MINUTE)
    assert decision.start is None
    assert decision.next_run_time is None
    assert decision.ignored_run_now
    assert decision.run_now_handled == "now"  # not fired later, when resumed
    assert not schedule.decide(spec, persist(fresh(), decision), now=CREATED).ignored_run_now


def test_resuming_runs_one_missed_tick() -> None:
    suspended = PolicySpec(schedule="*/5 * * * *", suspend=True)
    recorded = fresh(last_schedule_time=CREATED)
    later = CREATED + 60 * MINUTE
    assert schedule.decide(suspended, recorded, now=later).start is None
    resumed = schedule.decide(dataclasses.replace(suspended, suspend=False), recorded, now=later)
    assert resumed.start is not None
    assert resumed.last_schedule_time == datetime.datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


EXPRESSIONS = st.sampled_from(["* * * * *", "*/7 * * * *", "0 * * * *", "15 3 * * 1-5"])
ZONES = st.sampled_from([None, "Europe/Paris", "America/New_York", "Asia/Kolkata"])


@settings(max_examples=150, deadline=None)
@given(
    expression=EXPRESSIONS,
    zone=ZONES,
    gaps=st.lists(st.integers(min_value=0, max_value=3 * 24 * 60), min_size=1, max_size=25),
    crashes=st.lists(st.booleans(), min_size=25, max_size=25),
)
def test_restarts_never_duplicate_or_lose_the_latest_tick(
    expression: str, zone: str | None, gaps: list[int], crashes: list[bool]
) -> None:
    """An operator passing at arbitrary moments, sometimes dying right after persisting a
    run (and deciding again from the stored state): every scheduled run is a real tick,
    no tick runs twice, each pass starts at most one run, and after a pass the latest
    tick up to then has run."""
    spec = PolicySpec(schedule=expression, time_zone=zone)
    ticks = cron.parse_cron(expression, zone)
    recorded, now = fresh(observed_generation=1), CREATED
    started: list[datetime.datetime] = []
    for gap, crash in zip(gaps, crashes, strict=False):
        now += datetime.timedelta(minutes=gap, seconds=7)
        for _ in range(2 if crash else 1):  # a crash: the restarted process decides again
            decision = schedule.decide(spec, recorded, now=now)
            if decision.start is not None:
                assert decision.start.trigger is Trigger.SCHEDULE
                assert decision.last_schedule_time is not None
                started.append(decision.last_schedule_time)
            recorded = persist(recorded, decision)
        latest = ticks.latest(after=CREATED, now=now)
        assert recorded.last_schedule_time == latest
    assert len(started) == len(set(started))
    assert started == sorted(started)
    assert all(ticks.latest(after=t - MINUTE, now=t) == t for t in started)


def test_run_ids_are_short_and_distinct_per_trigger() -> None:
    moment = datetime.datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    ids = {schedule.run_id(moment, trigger) for trigger in Trigger}
    assert len(ids) == len(Trigger)
    assert all(len(i) <= 128 for i in ids)


def test_a_run_records_the_mode_it_started_in() -> None:
    decision = schedule.decide(PolicySpec(mode=Mode.ENFORCE), fresh(), now=CREATED)
    assert decision.start == observed.Run(
        "20261129-010030-create-g1", Trigger.CREATE, Mode.ENFORCE, CREATED
    )
