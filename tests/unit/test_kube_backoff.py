from __future__ import annotations

import random

import pytest

from imageprune.kube.backoff import Backoff

pytestmark = pytest.mark.unit


def test_without_jitter_delays_double_up_to_the_maximum() -> None:
    backoff = Backoff(initial=1, maximum=10, factor=2, jitter=0)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 10, 10]


def test_jitter_only_shortens_and_stays_within_its_fraction() -> None:
    backoff = Backoff(initial=4, maximum=4, jitter=0.5, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(2 <= d <= 4 for d in delays)
    assert len(set(delays)) > 100  # spread, not one value


def test_reset_starts_over() -> None:
    backoff = Backoff(initial=1, maximum=100, jitter=0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1
    assert backoff.attempts == 1


def test_a_very_long_outage_does_not_overflow() -> None:
    backoff = Backoff(initial=1, maximum=30, jitter=0, attempts=10_000)
    assert backoff.next_delay() == 30


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 5, "maximum": 1}, {"factor": 0.5}, {"jitter": 1}]
)
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(**kwargs)  # type: ignore[arg-type]
