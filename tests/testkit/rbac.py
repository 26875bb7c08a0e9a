"""The operator's RBAC rules as the chart grants them (charts/imageprune/templates/
rbac-operator.yaml), for tests that run the operator under exactly those."""

from __future__ import annotations

from typing import Any

# The ClusterRole, and the Events the chart grants in a Role per namespace (granted
# cluster-wide here: the tests' operator runs in no namespace of the chart's).
OPERATOR_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["imageprune.io"],
        "resources": ["imageprunetasks"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete", "deletecollection"],
    },
    {
        "apiGroups": ["imageprune.io"],
        "resources": ["imageprunepolicies"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": ["imageprune.io"],
        "resources": ["imageprunepolicies/status"],
        "verbs": ["patch"],
    },
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]


# The leader election's Role in the release namespace (granted cluster-wide here too).
LEADER_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "patch"],
    },
]


def without_deletecollection() -> list[dict[str, Any]]:
    """OPERATOR_RULES as a cluster whose RBAC predates the verb has them."""
    return [
        {**rule, "verbs": [v for v in rule["verbs"] if v != "deletecollection"]}
        for rule in OPERATOR_RULES
    ]
