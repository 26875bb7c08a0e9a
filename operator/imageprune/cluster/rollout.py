"""Waves and the failure budget: which pending nodes join the current run now.

Never more than rollout.maxConcurrentNodes nodes are in flight (released and not
finished, or still busy with an earlier run), and nothing is released once more nodes
have failed than rollout.maxFailedNodes allows: the run pauses and says why. A skipped
node (see standing) is neither released nor in flight, and is no failure."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping

from imageprune.api.policy import Rollout
from imageprune.cluster import observed, standing


@dataclasses.dataclass(frozen=True, slots=True)
class Wave:
    release: tuple[str, ...]  # nodes to release into the run now, sorted
    in_flight: int
    failed: int
    paused_reason: str | None = None  # set when the failure budget is spent

    @property
    def paused(self) -> bool:
        return self.paused_reason is not None


def next_wave(
    *,
    matched: Collection[str],
    standings: Mapping[str, standing.Standing],  # by node name, every matched node
    rollout: Rollout,
    hold: bool = False,  # suspended: the nodes in flight finish, no new ones start
) -> Wave:
    mine = [standings[node] for node in matched]
    in_flight = sum(each.in_flight for each in mine)
    failed = sum(each.state is observed.NodeState.FAILED for each in mine)
    if rollout.exhausted(failed=failed, matched=len(matched)):
        budget = rollout.failure_budget(len(matched))
        allowed = rollout.max_failed_nodes.to_json()
        reason = (
            f"{failed} of {len(matched)} nodes failed, more than rollout.maxFailedNodes"
            f" ({allowed}, i.e. {budget} nodes) allows; the remaining nodes wait for the next run"
        )
        return Wave((), in_flight, failed, reason)
    # Skipped nodes are not pending: they wait for nothing, and take no place.
    waiting = sorted(
        node
        for node in matched
        if standings[node].state is observed.NodeState.PENDING
        and not (standings[node].released or standings[node].in_flight)
    )
    room = 0 if hold else max(0, rollout.wave_size(len(matched)) - in_flight)
    return Wave(tuple(waiting[:room]), in_flight, failed)
