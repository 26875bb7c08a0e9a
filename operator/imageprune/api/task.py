"""ImagePruneTask: one per (policy, matching node). The operator writes its spec; the
node's agent reads it and writes back status. Names and labels are derived here only, so
the operator finds the task of any (policy, node) pair without listing."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Mapping
from typing import Any

from imageprune.api import checks, fields, names, times
from imageprune.api.policy import Mode, Trigger
from imageprune.policy import selection

MAX_NAME = 253  # a DNS subdomain, like every object name
MAX_LABEL_VALUE = 63
_DIGEST_LENGTH = 16  # hex digits: 64 bits, collisions out of reach for any cluster
# A report's per-image lists: up to about 35 KB a task, read only to explain one image.
_PER_IMAGE_LISTS = ("results", "kept")


def task_name(policy: str, node: str) -> str:
    """`<policy>.<node>`. Node names hold dots, so that alone would be ambiguous when the
    policy name holds one too ("a.b" + "c" and "a" + "b.c"); such names, and names over
    253 characters, are shortened and end in a hash of the pair instead."""
    name = f"{policy}.{node}"
    if "." not in policy and len(name) <= MAX_NAME:
        return name
    return _shortened(name, MAX_NAME, f"{policy}\0{node}")


def label_value(name: str) -> str:
    """An object name as a label value (at most 63 characters; node and policy names may
    be longer): as it is when it fits, else shortened and ending in its hash."""
    return name if len(name) <= MAX_LABEL_VALUE else _shortened(name, MAX_LABEL_VALUE, name)


def essentials(body: Mapping[str, Any]) -> dict[str, Any]:
    """A task without its report's per-image lists: what is kept of each task where a
    policy's tasks are held together (the operator's index, the plugin's status), so
    that thousands of them stay small in memory and a page of a listing stays within
    the client's answer bound."""
    metadata, status = (
        fields.mapping(body.get("metadata")),
        dict(fields.mapping(body.get("status"))),
    )
    if "report" in status:
        report = fields.mapping(status["report"])
        status["report"] = {k: v for k, v in report.items() if k not in _PER_IMAGE_LISTS}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "ownerReferences": metadata.get("ownerReferences"),
        },
        "spec": body.get("spec"),
        "status": status,
    }


def _shortened(text: str, limit: int, identity: str) -> str:
    digest = hashlib.sha256(identity.encode()).hexdigest()[:_DIGEST_LENGTH]
    # Names and label values must end in a letter or digit, not in the cut's "." or "-".
    head = text[: limit - _DIGEST_LENGTH - 1].rstrip(".-")
    return f"{head}-{digest}"


@dataclasses.dataclass(frozen=True, slots=True)
class TaskSpec:
    node_name: str
    policy_name: str
    policy_generation: int
    run_id: str  # a new run id asks the agent for a new run
    trigger: Trigger
    mode: Mode
    selection: Mapping[str, object]  # the policy's node-selection fields, for the node parser
    requested_at: datetime.datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "nodeName": self.node_name,
            "policyName": self.policy_name,
            "policyGeneration": self.policy_generation,
            "runId": self.run_id,
            "trigger": self.trigger.value,
            "mode": self.mode.value,
            "selection": dict(self.selection),
            "requestedAt": times.to_rfc3339(self.requested_at),
        }


def spec_from_dict(spec: Mapping[str, object]) -> TaskSpec:
    """Parse a task spec as read from the apiserver. Raises selection.PolicyError naming
    the field (an agent reports it on the task instead of crashing)."""
    generation = spec.get("policyGeneration")
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise selection.PolicyError("spec.policyGeneration", "required, an integer")
    chosen = spec.get("selection")
    if not isinstance(chosen, Mapping):
        raise selection.PolicyError("spec.selection", "required, a mapping")
    requested = _string(spec, "requestedAt")
    try:
        requested_at = times.from_rfc3339(requested)
    except ValueError:
        raise selection.PolicyError(
            "spec.requestedAt", f"must be an RFC 3339 time (got {requested!r})"
        ) from None
    return TaskSpec(
        node_name=_string(spec, "nodeName"),
        policy_name=_string(spec, "policyName"),
        policy_generation=generation,
        run_id=_string(spec, "runId"),
        trigger=checks.choice(Trigger, _string(spec, "trigger"), "spec.trigger"),
        mode=checks.choice(Mode, _string(spec, "mode"), "spec.mode"),
        selection=chosen,
        requested_at=requested_at,
    )


def manifest(spec: TaskSpec, *, policy_uid: str) -> dict[str, object]:
    """The whole task object to create: name, labels, and the policy as its controller
    owner (so `kubectl get ipt` links back, and a garbage collector, where one runs,
    deletes it with the policy; the operator deletes tasks itself regardless)."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.TASK_KIND,
        "metadata": {
            "name": task_name(spec.policy_name, spec.node_name),
            "labels": {
                names.POLICY_LABEL: label_value(spec.policy_name),
                names.NODE_LABEL: label_value(spec.node_name),
            },
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": names.POLICY_KIND,
                    "name": spec.policy_name,
                    "uid": policy_uid,
                    "controller": True,
                }
            ],
        },
        "spec": spec.to_dict(),
    }


def _string(spec: Mapping[str, object], field: str) -> str:
    value = spec.get(field)
    if not isinstance(value, str) or not value:
        raise selection.PolicyError(f"spec.{field}", "required, a non-empty string")
    return value
