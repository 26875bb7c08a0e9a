from __future__ import annotations

import datetime

import pytest

from imageprune.policy import durations

pytestmark = pytest.mark.unit

T = datetime.timedelta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", T(seconds=90)),
        ("30m", T(minutes=30)),
        ("168h", T(days=7)),
        ("1h30m", T(hours=1, minutes=30)),
        ("7d", T(days=7)),
        ("2w", T(weeks=2)),
        ("1w2d3h4m5s", T(days=9, hours=3, minutes=4, seconds=5)),
        ("1.5h", T(minutes=90)),
        (".5m", T(seconds=30)),
        ("500ms", T(milliseconds=500)),
        ("250us", T(microseconds=250)),
        ("250µs", T(microseconds=250)),
        ("1500ns", T(microseconds=1)),
        ("0", T(0)),
        ("0s", T(0)),
    ],
)
def test_parses_go_style_and_day_week_units(text: str, expected: datetime.timedelta) -> None:
    assert durations.parse_duration(text) == expected


def test_length_is_bounded_at_64_characters() -> None:
    assert durations.parse_duration("0" * 62 + "1s") == datetime.timedelta(seconds=1)
    with pytest.raises(ValueError, match="longer than 64 characters"):
        durations.parse_duration("0" * 63 + "1s")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "must not be empty"),
        ("-5m", "must not be negative"),
        ("5", "expected a number and a unit"),
        ("h", "expected a number and a unit"),
        ("5y", "expected a number and a unit"),
        ("1h 30m", "expected a number and a unit"),
        (" 5m", "expected a number and a unit"),
        ("1e3s", "expected a number and a unit"),
        ("٣s", "expected a number and a unit"),  # Arabic-Indic digit: Go rejects it too
        ("9" * 30 + "w", "too large"),
    ],
)
def test_rejects_with_a_message_saying_what_is_accepted(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as caught:
        durations.parse_duration(text)
    if "expected" in complaint:
        assert "units: ns, us, ms, s, m, h, d, w" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (T(0), "0s"),
        (T(days=7), "7d"),
        (T(weeks=2), "14d"),
        (T(hours=36), "36h"),
        (T(hours=48), "2d"),
        (T(seconds=90), "90s"),
        (T(minutes=90), "90m"),
        (T(hours=1), "1h"),
        (T(days=10, hours=12), "10d12h"),
        (T(hours=3, minutes=17, seconds=42), "3h17m"),
        (T(minutes=2, seconds=5, milliseconds=7), "2m5s"),
        (T(milliseconds=500), "500ms"),
        (T(microseconds=1500), "1500us"),
        (T(seconds=-90), "-90s"),
    ],
)
def test_formats_compactly(value: datetime.timedelta, text: str) -> None:
    assert durations.format_duration(value) == text


@pytest.mark.parametrize("text", ["90s", "30m", "36h", "7d", "10d12h", "500ms", "3us"])
def test_whole_values_survive_a_round_trip(text: str) -> None:
    value = durations.parse_duration(text)
    assert durations.parse_duration(durations.format_duration(value)) == value


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (T(milliseconds=346, microseconds=353), "just now"),
        (T(0), "just now"),
        (T(seconds=-5), "just now"),  # a clock that ran backwards
        (T(seconds=1), "1s ago"),
        (T(seconds=90, milliseconds=700), "90s ago"),
        (T(hours=3, milliseconds=1), "3h ago"),
    ],
)
def test_ages_read_as_people_say_them(age: datetime.timedelta, text: str) -> None:
    assert durations.format_age(age) == text
