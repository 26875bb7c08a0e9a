from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

import pytest

from imageprune.api import conditions
from imageprune.api.conditions import Status, Type

pytestmark = pytest.mark.unit

T0 = datetime.datetime(2026, 11, 29, 18, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def _set(
    current: Sequence[Mapping[str, object]],
    kind: Type,
    status: Status,
    now: datetime.datetime,
    *,
    reason: str = "RunCompleted",
    message: str = "done",
    generation: int = 1,
) -> list[Mapping[str, object]]:
    return conditions.set_condition(
        current,
        kind=kind,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        now=now,
    )


def test_a_new_condition_is_added_with_its_transition_time() -> None:
    result = _set([], Type.READY, Status.TRUE, T0)
    assert result == [
        {
            "type": "Ready",
            "status": "True",
            "observedGeneration": 1,
            "lastTransitionTime": "2026-11-29T18:00:00Z",
            "reason": "RunCompleted",
            "message": "done",
        }
    ]


def test_same_status_keeps_the_transition_time_and_updates_the_rest() -> None:
    first = _set([], Type.READY, Status.TRUE, T0)
    second = _set(
        first, Type.READY, Status.TRUE, T1, reason="RunCompleted", message="again", generation=2
    )
    assert second[0]["lastTransitionTime"] == "2026-11-29T18:00:00Z"
    assert second[0]["message"] == "again"
    assert second[0]["observedGeneration"] == 2


def test_a_status_change_moves_the_transition_time() -> None:
    first = _set([], Type.READY, Status.TRUE, T0)
    second = _set(first, Type.READY, Status.FALSE, T1, reason="NodesFailed")
    assert second[0]["lastTransitionTime"] == "2026-11-29T18:05:00Z"
    assert second[0]["status"] == "False"


def test_other_types_are_kept_in_order_and_the_input_is_not_changed() -> None:
    current = _set(_set([], Type.READY, Status.TRUE, T0), Type.PROGRESSING, Status.FALSE, T0)
    snapshot = [dict(c) for c in current]
    result = _set(current, Type.READY, Status.UNKNOWN, T1, reason="RunStarted")
    assert [c["type"] for c in result] == ["Ready", "Progressing"]
    assert result[1] == snapshot[1]
    assert current == snapshot
    assert conditions.find(result, Type.READY) == result[0]
    assert conditions.find(result, Type.DEGRADED) is None
    assert not conditions.is_true(result, Type.READY)
    assert conditions.is_true(_set(result, Type.DEGRADED, Status.TRUE, T1), Type.DEGRADED)


@pytest.mark.parametrize("reason", ["", "run completed", "1Run", "Run-Completed", "Done_:"])
def test_reason_must_be_camel_case(reason: str) -> None:
    with pytest.raises(ValueError, match="CamelCase"):
        _set([], Type.READY, Status.TRUE, T0, reason=reason)


def test_long_messages_are_cut_to_the_schema_bound() -> None:
    result = _set([], Type.DEGRADED, Status.TRUE, T0, message="x" * 40_000)
    message = str(result[0]["message"])
    assert len(message) == conditions.MAX_MESSAGE
    assert message.endswith(" [...]")


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        _set([], Type.READY, Status.TRUE, T0.replace(tzinfo=None))
