"""The leader election's decisions: who may take, renew or must wait for a Lease."""

from __future__ import annotations

import datetime

import pytest

from imageprune.cluster import election
from imageprune.cluster.election import Decision

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 12, 7, 18, 0, 0, 123456, tzinfo=datetime.UTC)


def lease(
    holder: str | None, *, duration: int = 15, version: str = "7", transitions: int = 2
) -> election.Record:
    spec: dict[str, object] = {"leaseDurationSeconds": duration, "leaseTransitions": transitions}
    if holder is not None:
        spec |= {"holderIdentity": holder, "acquireTime": "2026-12-07T17:00:00.000000Z"}
    return election.Record.of({"metadata": {"resourceVersion": version}, "spec": spec})


def test_no_lease_is_created() -> None:
    assert election.decide(None, me="a", seen_since=0.0, now=0.0) is Decision.CREATE


def test_our_own_lease_is_renewed() -> None:
    assert election.decide(lease("a"), me="a", seen_since=0.0, now=100.0) is Decision.RENEW


def test_another_holder_is_waited_for_until_our_clock_saw_the_lease_still_for_its_duration() -> (
    None
):
    record = lease("b", duration=15)
    assert election.decide(record, me="a", seen_since=10.0, now=24.9) is Decision.WAIT
    assert election.decide(record, me="a", seen_since=10.0, now=25.0) is Decision.TAKE


@pytest.mark.parametrize("holder", [None, ""])
def test_a_released_lease_is_taken_at_once(holder: str | None) -> None:
    assert election.decide(lease(holder), me="a", seen_since=5.0, now=5.0) is Decision.TAKE


def test_the_observer_restarts_the_clock_only_when_the_lease_changes() -> None:
    observer = election.Observer()
    assert observer.seen_since(lease("b", version="1"), 10.0) == 10.0
    assert observer.seen_since(lease("b", version="1"), 20.0) == 10.0  # unchanged: not renewed
    assert observer.seen_since(lease("b", version="2"), 21.0) == 21.0  # renewed
    assert observer.seen_since(None, 22.0) == 22.0


def test_taking_over_counts_a_transition_and_stamps_both_times() -> None:
    spec = election.spec(lease("b"), Decision.TAKE, me="a", duration=15, now=NOW)
    assert spec == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-12-07T18:00:00.123456Z",
        "renewTime": "2026-12-07T18:00:00.123456Z",
        "leaseTransitions": 3,
    }


def test_a_new_lease_has_no_transition_yet() -> None:
    spec = election.spec(None, Decision.CREATE, me="a", duration=15, now=NOW)
    assert spec["leaseTransitions"] == 0
    assert spec["holderIdentity"] == "a"


def test_renewing_keeps_the_acquire_time_and_transitions() -> None:
    spec = election.spec(lease("a"), Decision.RENEW, me="a", duration=15, now=NOW)
    assert spec["acquireTime"] == "2026-12-07T17:00:00.000000Z"
    assert spec["renewTime"] == "2026-12-07T18:00:00.123456Z"
    assert spec["leaseTransitions"] == 2


def test_waiting_writes_nothing() -> None:
    with pytest.raises(ValueError, match="wait"):
        election.spec(lease("b"), Decision.WAIT, me="a", duration=15, now=NOW)


def test_a_release_empties_the_holder_and_shortens_the_duration() -> None:
    spec = election.released(lease("a"), now=NOW)
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 2


def test_a_garbled_lease_reads_as_released() -> None:
    record = election.Record.of({"metadata": {}, "spec": None})
    assert record.holder == ""
    assert election.decide(record, me="a", seen_since=0.0, now=0.0) is Decision.TAKE
