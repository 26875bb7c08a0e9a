"""Where each matched node stands in run R, from its task and from what the operator knows
of the node: a node that cannot run (NotReady, or no working agent) is skipped instead of
waiting for ever, and an agent that started the run and went silent fails its node after
rollout.nodeTimeout. Rollout and the policy status both read these standings, so a wave
and the node counts never disagree."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Collection, Iterable

from imageprune.cluster import observed
from imageprune.policy import durations


class Unable(enum.StrEnum):
    """Why a node cannot take a run now; also the reason a skipped node is listed with."""

    NODE_NOT_READY = "NodeNotReady"
    AGENT_NOT_RUNNING = "AgentNotRunning"


_WHY = {
    Unable.NODE_NOT_READY: "the node is NotReady",
    Unable.AGENT_NOT_RUNNING: "no working imageprune agent on the node",
}


def unable(
    nodes: Iterable[str], *, not_ready: Collection[str], working: Collection[str] | None
) -> dict[str, Unable]:
    """The nodes that cannot run now, and why. `working`: the nodes with a working
    agent, or None when that is not known (no agent watch, or no complete listing yet):
    then no node is held to lack one."""
    found = {}
    for node in nodes:
        if node in not_ready:
            found[node] = Unable.NODE_NOT_READY
        elif working is not None and node not in working:
            found[node] = Unable.AGENT_NOT_RUNNING
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class Standing:
    state: observed.NodeState
    in_flight: bool = False  # holds a place in the wave (rollout.maxConcurrentNodes)
    released: bool = False  # its task's spec names the run
    reason: str = ""  # why it failed or was skipped
    message: str = ""


def stand(
    view: observed.TaskView | None,
    *,
    run_id: str,
    unable: Unable | None,
    now: datetime.datetime,
    node_timeout: datetime.timedelta,
) -> Standing:
    if view is None:
        if unable is None:
            return Standing(observed.NodeState.PENDING)
        return Standing(observed.NodeState.SKIPPED, reason=unable.value, message=_WHY[unable])
    state = view.state(run_id)
    released = view.released(run_id)
    silent = view.busy() and view.started_at is not None and now - view.started_at >= node_timeout
    if state is observed.NodeState.RUNNING and silent:
        return Standing(
            observed.NodeState.FAILED,
            released=released,
            reason="NodeTimeout",
            message=f"the agent started run {run_id} and has not finished it within "
            f"rollout.nodeTimeout ({durations.format_duration(node_timeout)})",
        )
    if state is observed.NodeState.PENDING and unable is not None:
        # Released or not, it takes no place in the wave; once it can run again, it
        # joins this run if it is still under way, else the next one.
        return Standing(
            observed.NodeState.SKIPPED, released=released, reason=unable.value, message=_WHY[unable]
        )
    # A node still on an earlier run holds its place, unless its agent went silent on it.
    in_flight = view.in_flight(run_id) and not silent
    if state is observed.NodeState.FAILED:
        return Standing(state, in_flight, released, view.reason or "Failed", view.message)
    return Standing(state, in_flight, released)
