"""A standard Kubernetes LabelSelector (matchLabels and matchExpressions) evaluated
against a node's labels, with the apiserver's semantics: every part must hold, and an
empty selector selects every node."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from imageprune.api import checks
from imageprune.policy import selection


class Operator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


_TAKES_VALUES = frozenset({Operator.IN, Operator.NOT_IN})


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if (self.operator in _TAKES_VALUES) != bool(self.values):
            raise ValueError(
                f"operator {self.operator} "
                + (
                    "needs at least one value"
                    if self.operator in _TAKES_VALUES
                    else "takes no values"
                )
            )

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case Operator.IN:
                return self.key in labels and labels[self.key] in self.values
            case Operator.NOT_IN:
                # As in Kubernetes: a node without the label is "not in" any set.
                return self.key not in labels or labels[self.key] not in self.values
            case Operator.EXISTS:
                return self.key in labels
            case Operator.DOES_NOT_EXIST:
                return self.key not in labels


@dataclasses.dataclass(frozen=True, slots=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()  # sorted (key, value) pairs
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match_labels) and all(
            requirement.matches(labels) for requirement in self.requirements
        )

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {}
        if self.match_labels:
            body["matchLabels"] = dict(self.match_labels)
        if self.requirements:
            body["matchExpressions"] = [
                {"key": r.key, "operator": r.operator.value}
                | ({"values": sorted(r.values)} if r.values else {})
                for r in self.requirements
            ]
        return body


EVERY_NODE = LabelSelector()


def from_dict(value: object, path: str) -> LabelSelector:
    """Parse a LabelSelector; None (absent) selects every node. Raises
    selection.PolicyError naming the field."""
    if value is None:
        return EVERY_NODE
    body = _mapping(value, path)
    checks.no_unknown(body, path, {"matchLabels", "matchExpressions"})
    labels = _mapping(_or(body.get("matchLabels"), {}), f"{path}.matchLabels")
    pairs = []
    for key, label in labels.items():
        if not isinstance(key, str) or not isinstance(label, str):
            raise selection.PolicyError(f"{path}.matchLabels", "keys and values must be strings")
        pairs.append((key, label))
    expressions = _or(body.get("matchExpressions"), [])
    if not isinstance(expressions, list):
        raise selection.PolicyError(f"{path}.matchExpressions", "must be a list")
    requirements = tuple(
        _requirement(item, f"{path}.matchExpressions[{index}]")
        for index, item in enumerate(expressions)
    )
    return LabelSelector(tuple(sorted(pairs)), requirements)


def _requirement(value: object, path: str) -> Requirement:
    body = _mapping(value, path)
    checks.no_unknown(body, path, {"key", "operator", "values"})
    key = body.get("key")
    if not isinstance(key, str) or not key:
        raise selection.PolicyError(f"{path}.key", "required, a label key")
    operator = checks.choice(Operator, body.get("operator"), f"{path}.operator")
    values = _or(body.get("values"), [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise selection.PolicyError(f"{path}.values", "must be a list of strings")
    try:
        return Requirement(key, operator, frozenset(values))
    except ValueError as error:
        raise selection.PolicyError(f"{path}.values", str(error)) from None


def _or(value: object, empty: object) -> object:
    """A null field counts as absent, as Kubernetes treats it."""
    return empty if value is None else value


def _mapping(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise selection.PolicyError(path, "must be a mapping")
    return value
