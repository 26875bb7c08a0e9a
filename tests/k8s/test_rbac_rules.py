"""tests/testkit/rbac.py holds the operator's rules as the chart renders them, so the
tests that run the operator under them grant what a real install grants."""

from __future__ import annotations

import pytest

from testkit import chart, rbac

pytestmark = pytest.mark.k8s


def test_the_operator_rules_are_the_charts(helm: chart.Helm) -> None:
    objects = helm.template()

    def rules(kind: str, suffix: str) -> list[list[dict[str, object]]]:
        return [
            o["rules"]
            for o in objects
            if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)
        ]

    (cluster_role,) = rules("ClusterRole", "-operator")
    events = rules("Role", "-operator-events")
    assert events, "no Role for the operator's Events"
    assert all(role == events[0] for role in events), events
    assert cluster_role + events[0] == rbac.OPERATOR_RULES
    (leader,) = rules("Role", "-operator-leader")
    assert leader == rbac.LEADER_RULES
