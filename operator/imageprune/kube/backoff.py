"""Exponential backoff with jitter, so that many agents that lost the apiserver (or their
runtime) at the same moment do not all knock again at the same moment."""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass
class Backoff:
    """`next_delay()` grows from `initial` by `factor` up to `maximum`; each delay is
    shortened by a random part of up to `jitter` of itself. `reset()` after a success."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    attempts: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("backoff needs factor >= 1 and 0 <= jitter < 1")

    def next_delay(self) -> float:
        # The exponent is capped so that a long outage cannot overflow the float.
        ceiling = min(self.maximum, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return ceiling * (1 - self.jitter * self.rng.random())

    def reset(self) -> None:
        self.attempts = 0
