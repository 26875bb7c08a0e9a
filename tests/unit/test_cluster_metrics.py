"""The operator's policy gauges follow the run's node counts, skipped nodes included."""

from __future__ import annotations

import pytest

from imageprune.cluster import metrics

pytestmark = pytest.mark.unit


def _nodes(policy: str, state: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "imageprune_policy_nodes", {"policy": policy, "state": state}
    )


def test_every_node_state_of_the_run_is_a_gauge_until_the_policy_goes() -> None:
    counts = {"matched": 5, "pending": 1, "running": 1, "succeeded": 1, "failed": 1, "skipped": 1}
    metrics.observe("gauges", {}, {"run": {"id": "r1", "nodes": counts}})
    assert {state: _nodes("gauges", state) for state in counts} == counts
    metrics.forget("gauges")
    assert all(_nodes("gauges", state) is None for state in counts)
