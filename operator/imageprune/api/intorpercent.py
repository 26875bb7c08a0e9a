"""Kubernetes "int or percent" values (like a Deployment's maxSurge): 3 or "25%", scaled
against a total, e.g. rollout.maxConcurrentNodes of the matching nodes."""

from __future__ import annotations

import dataclasses
import re

from imageprune.policy import selection

_PERCENT = re.compile(r"(0|[1-9][0-9]*)%")


@dataclasses.dataclass(frozen=True, slots=True)
class IntOrPercent:
    value: int
    percent: bool = False

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError(f"must not be negative (got {self.value})")
        if self.percent and self.value > 100:
            raise ValueError(f"a percent must be at most 100% (got {self.value}%)")

    def scaled(self, total: int, *, round_up: bool) -> int:
        """The count this means out of `total`: a count as it is, a percent of `total`
        rounded up or down (kube's GetScaledValueFromIntOrPercent)."""
        if not self.percent:
            return self.value
        scaled, remainder = divmod(self.value * total, 100)
        return scaled + 1 if round_up and remainder else scaled

    def to_json(self) -> int | str:
        return f"{self.value}%" if self.percent else self.value


def parse(value: object, path: str, *, minimum: int) -> IntOrPercent:
    """An int (at least `minimum`) or a string "N%" (N from `minimum` to 100). Raises
    selection.PolicyError naming `path`."""
    expected = f"a count of at least {minimum} or a percent from {minimum}% to 100%"
    if isinstance(value, int) and not isinstance(value, bool):
        parsed = IntOrPercent(value) if value >= 0 else None
    elif isinstance(value, str) and _PERCENT.fullmatch(value) and int(value[:-1]) <= 100:
        parsed = IntOrPercent(int(value[:-1]), percent=True)
    else:
        parsed = None
    if parsed is None or parsed.value < minimum:
        raise selection.PolicyError(path, f"must be {expected} (got {value!r})")
    return parsed
