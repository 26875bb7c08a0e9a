from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imageprune.api import labelselector
from imageprune.api.labelselector import LabelSelector, Operator, Requirement
from imageprune.policy.selection import PolicyError

pytestmark = pytest.mark.unit

NODE = {"kubernetes.io/os": "linux", "pool": "ci", "gpu": ""}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ({}, True),
        (None, True),
        ({"matchLabels": {"pool": "ci"}}, True),
        ({"matchLabels": {"pool": "ci", "kubernetes.io/os": "linux"}}, True),
        ({"matchLabels": {"pool": "web"}}, False),
        ({"matchLabels": {"zone": "a"}}, False),
        ({"matchLabels": {"gpu": ""}}, True),
        ({"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ci", "x"]}]}, True),
        ({"matchExpressions": [{"key": "pool", "operator": "In", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["ci"]}]}, False),
        ({"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["web"]}]}, True),
        # Kubernetes semantics: a missing label is "not in" every set.
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "pool", "operator": "DoesNotExist"}]}, False),
        # Every part must hold.
        (
            {
                "matchLabels": {"pool": "ci"},
                "matchExpressions": [{"key": "zone", "operator": "Exists"}],
            },
            False,
        ),
    ],
)
def test_matches(selector: object, matches: bool) -> None:
    assert labelselector.from_dict(selector, "spec.nodeSelector").matches(NODE) is matches


@pytest.mark.parametrize(
    ("selector", "where", "problem"),
    [
        ("pool=ci", "spec.nodeSelector", "must be a mapping"),
        ({"matchlabels": {}}, "spec.nodeSelector.matchlabels", "unknown field"),
        ({"matchLabels": {"pool": 1}}, "spec.nodeSelector.matchLabels", "strings"),
        ({"matchExpressions": {}}, "spec.nodeSelector.matchExpressions", "must be a list"),
        ({"matchExpressions": ["x"]}, "spec.nodeSelector.matchExpressions[0]", "mapping"),
        (
            {"matchExpressions": [{"operator": "Exists"}]},
            "spec.nodeSelector.matchExpressions[0].key",
            "required",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Equals"}]},
            "spec.nodeSelector.matchExpressions[0].operator",
            "must be one of In, NotIn, Exists, DoesNotExist",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            "spec.nodeSelector.matchExpressions[0].values",
            "needs at least one value",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            "spec.nodeSelector.matchExpressions[0].values",
            "takes no values",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]},
            "spec.nodeSelector.matchExpressions[0].values",
            "list of strings",
        ),
    ],
)
def test_rejects(selector: object, where: str, problem: str) -> None:
    with pytest.raises(PolicyError) as raised:
        labelselector.from_dict(selector, "spec.nodeSelector")
    assert raised.value.where == where
    assert problem in raised.value.problem


_KEYS = st.sampled_from(["a", "b", "c", "example.com/d"])
_VALUES = st.sampled_from(["x", "y", "z", ""])
_LABELS = st.dictionaries(_KEYS, _VALUES, max_size=4)
_REQUIREMENTS = st.one_of(
    st.builds(
        Requirement,
        _KEYS,
        st.sampled_from([Operator.IN, Operator.NOT_IN]),
        st.frozensets(_VALUES, min_size=1),
    ),
    st.builds(Requirement, _KEYS, st.sampled_from([Operator.EXISTS, Operator.DOES_NOT_EXIST])),
)
_SELECTORS = st.builds(
    lambda labels, requirements: LabelSelector(tuple(sorted(labels.items())), requirements),
    _LABELS,
    st.lists(_REQUIREMENTS, max_size=3).map(tuple),
)


@given(_LABELS, _KEYS, st.frozensets(_VALUES, min_size=1))
def test_not_in_is_the_complement_of_in(
    labels: dict[str, str], key: str, values: frozenset[str]
) -> None:
    inside = Requirement(key, Operator.IN, values).matches(labels)
    outside = Requirement(key, Operator.NOT_IN, values).matches(labels)
    assert inside != outside


@given(_LABELS, _KEYS)
def test_does_not_exist_is_the_complement_of_exists(labels: dict[str, str], key: str) -> None:
    assert Requirement(key, Operator.EXISTS).matches(labels) != Requirement(
        key, Operator.DOES_NOT_EXIST
    ).matches(labels)


@given(_SELECTORS, _LABELS)
def test_a_selector_is_the_conjunction_of_its_parts(
    selector: LabelSelector, labels: dict[str, str]
) -> None:
    parts = [LabelSelector(match_labels=(pair,)) for pair in selector.match_labels] + [
        LabelSelector(requirements=(r,)) for r in selector.requirements
    ]
    assert selector.matches(labels) == all(part.matches(labels) for part in parts)


@given(_LABELS)
def test_a_nodes_own_labels_select_it(labels: dict[str, str]) -> None:
    selector = labelselector.from_dict({"matchLabels": labels}, "spec.nodeSelector")
    assert selector.matches(labels)
    assert labelselector.EVERY_NODE.matches(labels)


@given(_SELECTORS, _LABELS)
def test_round_trips_through_its_dict(selector: LabelSelector, labels: dict[str, str]) -> None:
    again = labelselector.from_dict(selector.to_dict(), "spec.nodeSelector")
    assert again.matches(labels) == selector.matches(labels)
    assert again.to_dict() == selector.to_dict()
