"""The ImagePrunePolicy spec: the cluster fields the operator acts on, parsed and typed,
and the node-selection fields kept as the raw subset the node parser
(imageprune.policy.selection) reads, which the operator copies into each task."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping

from imageprune.api import checks, cron, intorpercent, labelselector
from imageprune.policy import durations, selection


class Mode(enum.StrEnum):
    DRY_RUN = "DryRun"  # report what would go, remove nothing
    ENFORCE = "Enforce"


class Trigger(enum.StrEnum):
    """Why a run started (policy status.run.trigger, task spec.trigger)."""

    SCHEDULE = "Schedule"
    CREATE = "Create"
    SPEC_CHANGE = "SpecChange"
    RUN_NOW = "RunNow"
    DISK_PRESSURE = "DiskPressure"


_ROLLOUT_FIELDS = frozenset({"maxConcurrentNodes", "maxFailedNodes", "nodeTimeout"})
DEFAULT_MAX_CONCURRENT_NODES = intorpercent.IntOrPercent(25, percent=True)
DEFAULT_MAX_FAILED_NODES = intorpercent.IntOrPercent(0)
# A prune of thousands of images on a slow disk takes minutes, not an hour: a node whose
# agent has been on one run this long has lost it (killed, or the node gone).
DEFAULT_NODE_TIMEOUT = datetime.timedelta(hours=1)
_MIN_NODE_TIMEOUT = datetime.timedelta(minutes=1)


@dataclasses.dataclass(frozen=True, slots=True)
class Rollout:
    max_concurrent_nodes: intorpercent.IntOrPercent = DEFAULT_MAX_CONCURRENT_NODES
    max_failed_nodes: intorpercent.IntOrPercent = DEFAULT_MAX_FAILED_NODES
    node_timeout: datetime.timedelta = DEFAULT_NODE_TIMEOUT

    def wave_size(self, matched: int) -> int:
        """Nodes pruned at once: a percent rounds up, and a wave holds at least one node."""
        return max(1, self.max_concurrent_nodes.scaled(matched, round_up=True))

    def failure_budget(self, matched: int) -> int:
        """Failed nodes tolerated: a percent rounds down, the cautious side."""
        return self.max_failed_nodes.scaled(matched, round_up=False)

    def exhausted(self, *, failed: int, matched: int) -> bool:
        """The rollout pauses once more nodes failed than the budget allows."""
        return failed > self.failure_budget(matched)


@dataclasses.dataclass(frozen=True, slots=True)
class PolicySpec:
    mode: Mode = Mode.DRY_RUN
    suspend: bool = False
    node_selector: labelselector.LabelSelector = labelselector.EVERY_NODE
    schedule: str | None = None  # cron; None: run on create and on spec change
    time_zone: str | None = None  # IANA; None: UTC
    rollout: Rollout = Rollout()
    # The node-selection fields exactly as written (with the apiserver's defaults),
    # for the node parser; validated by parse_spec.
    selection: Mapping[str, object] = dataclasses.field(default_factory=dict)


def parse_spec(spec: Mapping[str, object]) -> PolicySpec:
    """Parse and check a whole policy spec, the selection and the schedule too, so a
    policy the operator accepts is one every node accepts. Raises selection.PolicyError
    naming the field."""
    node_selection = {
        key: value for key, value in spec.items() if key not in selection.CLUSTER_FIELDS
    }
    selection.selection_from_spec(node_selection)
    schedule = _optional_string(spec.get("schedule"), "spec.schedule")
    time_zone = _optional_string(spec.get("timeZone"), "spec.timeZone")
    if time_zone is not None and schedule is None:
        raise selection.PolicyError("spec.timeZone", "requires spec.schedule")
    if schedule is not None:
        cron.parse_cron(schedule, time_zone)
    return PolicySpec(
        mode=_mode(spec.get("mode")),
        suspend=_suspend(spec.get("suspend")),
        node_selector=labelselector.from_dict(spec.get("nodeSelector"), "spec.nodeSelector"),
        schedule=schedule,
        time_zone=time_zone,
        rollout=_rollout(spec.get("rollout")),
        selection=node_selection,
    )


def _mode(value: object) -> Mode:
    return Mode.DRY_RUN if value is None else checks.choice(Mode, value, "spec.mode")


def _suspend(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise selection.PolicyError("spec.suspend", f"must be true or false (got {value!r})")
    return value


def _optional_string(value: object, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise selection.PolicyError(path, f"must be a non-empty string (got {value!r})")
    return value


def _rollout(value: object) -> Rollout:
    if value is None:
        return Rollout()
    path = "spec.rollout"
    if not isinstance(value, Mapping):
        raise selection.PolicyError(path, "must be a mapping")
    checks.no_unknown(value, path, _ROLLOUT_FIELDS)
    concurrent = value.get("maxConcurrentNodes")
    failed = value.get("maxFailedNodes")
    timeout = value.get("nodeTimeout")
    return Rollout(
        max_concurrent_nodes=DEFAULT_MAX_CONCURRENT_NODES
        if concurrent is None
        else intorpercent.parse(concurrent, f"{path}.maxConcurrentNodes", minimum=1),
        max_failed_nodes=DEFAULT_MAX_FAILED_NODES
        if failed is None
        else intorpercent.parse(failed, f"{path}.maxFailedNodes", minimum=0),
        node_timeout=DEFAULT_NODE_TIMEOUT
        if timeout is None
        else _node_timeout(timeout, f"{path}.nodeTimeout"),
    )


def _node_timeout(value: object, path: str) -> datetime.timedelta:
    if not isinstance(value, str):
        raise selection.PolicyError(path, f"must be a duration such as 1h (got {value!r})")
    try:
        timeout = durations.parse_duration(value)
    except ValueError as error:
        raise selection.PolicyError(path, str(error)) from None
    if timeout < _MIN_NODE_TIMEOUT:
        raise selection.PolicyError(path, f"must be at least 1m (got {value})")
    return timeout
