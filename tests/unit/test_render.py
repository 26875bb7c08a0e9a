from __future__ import annotations

import datetime

import pytest

from imageprune.cli import render

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2025, 1, 2, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (None, "never"),
        (datetime.timedelta(microseconds=1420), "just now"),
        (datetime.timedelta(seconds=90.7), "90s ago"),
        (datetime.timedelta(days=7), "7d ago"),
    ],
)
def test_ages_read_naturally(age: datetime.timedelta | None, text: str) -> None:
    assert render.age_text(None if age is None else NOW - age, NOW) == text
