from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imageprune.api import intorpercent
from imageprune.api.intorpercent import IntOrPercent
from imageprune.policy.selection import PolicyError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "minimum", "expected"),
    [
        (3, 1, IntOrPercent(3)),
        (0, 0, IntOrPercent(0)),
        ("25%", 1, IntOrPercent(25, percent=True)),
        ("100%", 1, IntOrPercent(100, percent=True)),
        ("0%", 0, IntOrPercent(0, percent=True)),
    ],
)
def test_parse(value: object, minimum: int, expected: IntOrPercent) -> None:
    parsed = intorpercent.parse(value, "spec.x", minimum=minimum)
    assert parsed == expected
    assert parsed.to_json() == value


@pytest.mark.parametrize(
    ("value", "minimum"),
    [(0, 1), (-1, 0), ("0%", 1), ("101%", 1), ("25", 1), ("25 %", 1), ("1.5%", 1),
     ("%", 0), ("-5%", 0), ("025%", 1), (True, 0), (2.5, 0), (None, 0), ([], 0)],
)  # fmt: skip
def test_parse_rejects(value: object, minimum: int) -> None:
    with pytest.raises(PolicyError) as raised:
        intorpercent.parse(value, "spec.rollout.maxConcurrentNodes", minimum=minimum)
    assert raised.value.where == "spec.rollout.maxConcurrentNodes"
    assert f"at least {minimum}" in raised.value.problem


@pytest.mark.parametrize(
    ("value", "total", "up", "down"),
    [
        (IntOrPercent(25, percent=True), 10, 3, 2),
        (IntOrPercent(25, percent=True), 4, 1, 1),
        (IntOrPercent(25, percent=True), 1, 1, 0),
        (IntOrPercent(25, percent=True), 0, 0, 0),
        (IntOrPercent(100, percent=True), 7, 7, 7),
        (IntOrPercent(5), 2, 5, 5),  # a count is not capped by the total
    ],
)
def test_scaled(value: IntOrPercent, total: int, up: int, down: int) -> None:
    assert value.scaled(total, round_up=True) == up
    assert value.scaled(total, round_up=False) == down


@given(st.integers(0, 100), st.integers(0, 100_000))
def test_percent_scaling_brackets_the_exact_share(percent: int, total: int) -> None:
    value = IntOrPercent(percent, percent=True)
    up, down = value.scaled(total, round_up=True), value.scaled(total, round_up=False)
    assert down * 100 <= percent * total <= up * 100
    assert up - down in (0, 1)
    assert up <= total


def test_invalid_values_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="negative"):
        IntOrPercent(-1)
    with pytest.raises(ValueError, match="at most 100%"):
        IntOrPercent(101, percent=True)
