from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imageprune.api import times

pytestmark = pytest.mark.unit

PARIS_WINTER = datetime.timezone(datetime.timedelta(hours=1))


def test_written_in_utc_with_whole_seconds() -> None:
    moment = datetime.datetime(2026, 11, 29, 19, 0, 5, 999_999, tzinfo=PARIS_WINTER)
    assert times.to_rfc3339(moment) == "2026-11-29T18:00:05Z"


@pytest.mark.parametrize(
    "text", ["2026-11-29T18:00:05Z", "2026-11-29T19:00:05+01:00", "2026-11-29T18:00:05.25Z"]
)
def test_read_with_any_offset(text: str) -> None:
    expected = datetime.datetime(2026, 11, 29, 18, 0, 5, tzinfo=datetime.UTC)
    assert times.from_rfc3339(text).replace(microsecond=0) == expected


@pytest.mark.parametrize("text", ["2026-11-29T18:00:05", "yesterday", ""])
def test_refuses_what_is_not_an_rfc3339_time(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message varies by cause)
        times.from_rfc3339(text)


@given(st.datetimes(timezones=st.just(datetime.UTC)))
def test_round_trips_to_the_second(moment: datetime.datetime) -> None:
    assert times.from_rfc3339(times.to_rfc3339(moment)) == moment.replace(microsecond=0)
