"""The real apiserver, with exactly the chart's CRDs, refuses bad policies with a message a
person understands, fills in the safe defaults, and serves the status and columns the
operator and the agents write."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
from typing import Any

import pytest

from imageprune.api import conditions, names, task
from imageprune.api.policy import Mode, Trigger
from imageprune.policy import selection
from testkit import crds
from testkit.kube import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("imageprune_crds")]

NOW = datetime.datetime(2026, 11, 29, 18, 0, tzinfo=datetime.UTC)


def _policy(name: str, spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.POLICY_KIND,
        "metadata": {"name": name},
    }
    if spec is not None:
        body["spec"] = spec
    return body


# (case id, spec, field path in the message, what the message says)
INVALID: list[tuple[str, Any, str, str]] = [
    ("no-spec", None, "spec", "Required value"),
    ("scope-case", {"scope": "unused"}, "spec.scope", 'supported values: "Unused", "Dangling"'),
    ("mode-case", {"mode": "enforce"}, "spec.mode", 'supported values: "DryRun", "Enforce"'),
    ("suspend-string", {"suspend": "yes"}, "spec.suspend", "must be of type boolean"),
    ("unusedFor-words", {"unusedFor": "7days"}, "spec.unusedFor", "must be a duration"),
    ("unusedFor-empty", {"unusedFor": ""}, "spec.unusedFor", "must be a duration"),
    ("olderThan-negative", {"olderThan": "-1h"}, "spec.olderThan", "must be a duration"),
    ("olderThan-no-unit", {"olderThan": "30"}, "spec.olderThan", "must be a duration"),
    ("keep-negative", {"keepLatestPerRepository": -1}, "spec.keepLatestPerRepository",
     "should be greater than or equal to 0"),
    ("keep-huge", {"keepLatestPerRepository": 1001}, "spec.keepLatestPerRepository",
     "should be less than or equal to 1000"),
    ("disk-low-above-high", {"diskUsage": {"highPercent": 60, "lowPercent": 80}},
     "spec.diskUsage.lowPercent", "lowPercent must be less than highPercent"),
    ("disk-low-equals-high", {"diskUsage": {"highPercent": 70, "lowPercent": 70}},
     "spec.diskUsage.lowPercent", "lowPercent must be less than highPercent"),
    ("disk-low-missing", {"diskUsage": {"highPercent": 80}}, "spec.diskUsage.lowPercent",
     "Required value"),
    ("disk-high-over-100", {"diskUsage": {"highPercent": 120, "lowPercent": 50}},
     "spec.diskUsage.highPercent", "should be less than or equal to 100"),
    ("disk-low-zero", {"diskUsage": {"highPercent": 80, "lowPercent": 0}},
     "spec.diskUsage.lowPercent", "should be greater than 0"),
    ("max-images-zero", {"limits": {"maxImagesPerRun": 0}}, "spec.limits.maxImagesPerRun",
     "should be greater than or equal to 1"),
    ("max-bytes-spaced", {"limits": {"maxBytesPerRun": "10 GB"}}, "spec.limits.maxBytesPerRun",
     "must be a byte count of at least 1 or a quantity"),
    ("max-bytes-zero", {"limits": {"maxBytesPerRun": "0Gi"}}, "spec.limits.maxBytesPerRun",
     "must be a byte count of at least 1 or a quantity"),
    ("max-bytes-milli", {"limits": {"maxBytesPerRun": "500m"}}, "spec.limits.maxBytesPerRun",
     "must be a byte count of at least 1 or a quantity"),
    ("include-space", {"include": ["nginx latest"]}, "spec.include[0]",
     "must be an image pattern"),
    ("include-empty", {"include": [""]}, "spec.include[0]", "should be at least 1 chars long"),
    ("exclude-too-many", {"exclude": [f"repo{i}/*" for i in range(257)]}, "spec.exclude",
     "must have at most 256 items"),
    ("exclude-too-long", {"exclude": ["a" * 513]}, "spec.exclude[0]",
     "may not be more than 512"),
    ("sandbox-space", {"sandboxImages": ["pause 3.10"]}, "spec.sandboxImages[0]",
     "must be an image pattern"),
    ("schedule-words", {"schedule": "every night"}, "spec.schedule",
     "must be a cron schedule with 5 fields"),
    ("schedule-four-fields", {"schedule": "0 3 * *"}, "spec.schedule",
     "must be a cron schedule with 5 fields"),
    ("schedule-tz-prefix", {"schedule": "CRON_TZ=UTC 0 3 * * *"}, "spec.schedule",
     "set the time zone with timeZone"),
    ("schedule-unknown-macro", {"schedule": "@nightly"}, "spec.schedule",
     "must be a cron schedule with 5 fields"),
    ("timezone-without-schedule", {"timeZone": "UTC"}, "spec.timeZone",
     "timeZone requires schedule"),
    ("timezone-spaced", {"schedule": "@daily", "timeZone": "Europe Paris"}, "spec.timeZone",
     "must be an IANA time zone name"),
    ("selector-in-without-values",
     {"nodeSelector": {"matchExpressions": [{"key": "pool", "operator": "In"}]}},
     "spec.nodeSelector.matchExpressions[0].values",
     "operators In and NotIn need at least one value"),
    ("selector-exists-with-values",
     {"nodeSelector": {"matchExpressions": [
         {"key": "pool", "operator": "Exists", "values": ["ci"]}]}},
     "spec.nodeSelector.matchExpressions[0].values",
     "operators Exists and DoesNotExist take no values"),
    ("selector-unknown-operator",
     {"nodeSelector": {"matchExpressions": [{"key": "pool", "operator": "Equals"}]}},
     "spec.nodeSelector.matchExpressions[0].operator", 'supported values: "In", "NotIn"'),
    ("selector-bad-key", {"nodeSelector": {"matchLabels": {"bad key!": "x"}}},
     "spec.nodeSelector.matchLabels", "keys must be label keys"),
    ("selector-bad-value", {"nodeSelector": {"matchLabels": {"pool": "ci runners"}}},
     "spec.nodeSelector.matchLabels", "values must be label values"),
    ("concurrent-zero", {"rollout": {"maxConcurrentNodes": 0}}, "spec.rollout.maxConcurrentNodes",
     "must be a node count of at least 1 or a percent from 1% to 100%"),
    ("concurrent-over-100", {"rollout": {"maxConcurrentNodes": "150%"}},
     "spec.rollout.maxConcurrentNodes",
     "must be a node count of at least 1 or a percent from 1% to 100%"),
    ("concurrent-no-percent-sign", {"rollout": {"maxConcurrentNodes": "3"}},
     "spec.rollout.maxConcurrentNodes",
     "must be a node count of at least 1 or a percent from 1% to 100%"),
    ("node-timeout-word", {"rollout": {"nodeTimeout": "soon"}}, "spec.rollout.nodeTimeout",
     "must be a duration"),
    ("failed-negative", {"rollout": {"maxFailedNodes": -1}}, "spec.rollout.maxFailedNodes",
     "must be a node count of at least 0 or a percent from 0% to 100%"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_policy_is_refused(
    kube_control_plane: ControlPlane, spec: Any, field: str, message: str
) -> None:
    result = crds.apply(kube_control_plane, _policy("invalid", spec))
    assert result.returncode != 0, f"accepted: {json.dumps(spec)}"
    assert f"{field}:" in result.stderr or f"{field}[" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr
    missing = kube_control_plane.kubectl("get", names.POLICY_PLURAL, "invalid", check=False)
    assert missing.returncode != 0


def test_a_misspelt_field_fails_kubectl_apply(kube_control_plane: ControlPlane) -> None:
    result = crds.apply(kube_control_plane, _policy("typo", {"unusedfor": "7d"}))
    assert result.returncode != 0
    assert 'unknown field "spec.unusedfor"' in result.stderr, result.stderr


def test_an_empty_spec_gets_the_safe_defaults(kube_control_plane: ControlPlane) -> None:
    result = crds.apply(kube_control_plane, _policy("defaults", {}))
    assert result.returncode == 0, result.stderr
    spec = kube_control_plane.get(names.POLICY_PLURAL, "defaults")["spec"]
    assert spec == {
        "scope": "Unused",
        "unusedFor": "2m",
        "sandboxImages": list(selection.DEFAULT_SANDBOX_IMAGES),
        "mode": "DryRun",
        "suspend": False,
        "rollout": {"maxConcurrentNodes": "25%", "maxFailedNodes": 0, "nodeTimeout": "1h"},
    }


def test_explicit_values_are_kept_over_defaults(kube_control_plane: ControlPlane) -> None:
    mine = {
        "unusedFor": "0",
        "sandboxImages": [],
        "mode": "Enforce",
        "rollout": {"maxConcurrentNodes": 1},
    }
    result = crds.apply(kube_control_plane, _policy("explicit", mine))
    assert result.returncode == 0, result.stderr
    spec = kube_control_plane.get(names.POLICY_PLURAL, "explicit")["spec"]
    assert spec["unusedFor"] == "0"
    assert spec["sandboxImages"] == []
    assert spec["mode"] == "Enforce"
    assert spec["rollout"] == {"maxConcurrentNodes": 1, "maxFailedNodes": 0, "nodeTimeout": "1h"}


# Edges of every rule above, on the accepted side.
VALID: list[tuple[str, dict[str, Any]]] = [
    ("durations", {"unusedFor": "1h30m", "olderThan": "2w"}),
    ("fractional-duration", {"unusedFor": "1.5h", "olderThan": "0"}),
    ("disk-edges", {"diskUsage": {"highPercent": 100, "lowPercent": 0.5}}),
    ("bytes", {"limits": {"maxBytesPerRun": "1.5G", "maxImagesPerRun": 1}}),
    ("bytes-int", {"limits": {"maxBytesPerRun": 1}}),
    ("keep-edges", {"keepLatestPerRepository": 1000}),
    ("macro", {"schedule": "@daily", "timeZone": "America/Argentina/Buenos_Aires"}),
    ("cron", {"schedule": "*/15 0-6 * * MON-FRI", "timeZone": "Etc/GMT+5"}),
    ("percents", {"rollout": {"maxConcurrentNodes": "100%", "maxFailedNodes": "0%",
                              "nodeTimeout": "90m"}}),
    ("counts", {"rollout": {"maxConcurrentNodes": 1, "maxFailedNodes": 5, "nodeTimeout": "2h"}}),
    ("selector", {"nodeSelector": {
        "matchLabels": {"kubernetes.io/os": "linux", "gpu": ""},
        "matchExpressions": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"},
            {"key": "pool", "operator": "NotIn", "values": ["web", "db"]},
        ],
    }}),
    ("patterns", {"include": ["myorg/*", "sha256:3f5a*"], "exclude": ["*pause*"]}),
    ("limits", {"include": ["a" * 512], "exclude": [f"r{i}/*" for i in range(256)]}),
]  # fmt: skip


@pytest.mark.parametrize("spec", [case[1] for case in VALID], ids=[case[0] for case in VALID])
def test_valid_policy_is_accepted(kube_control_plane: ControlPlane, spec: dict[str, Any]) -> None:
    result = crds.apply(kube_control_plane, _policy("valid", spec))
    try:
        assert result.returncode == 0, result.stderr
        stored = kube_control_plane.get(names.POLICY_PLURAL, "valid")["spec"]
        assert {field: stored[field] for field in spec} == spec
    finally:
        kube_control_plane.kubectl("delete", names.POLICY_PLURAL, "valid", "--ignore-not-found")


def _patch_status(plane: ControlPlane, plural: str, name: str, status: Any) -> None:
    plane.kubectl(
        "patch", plural, name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


POLICY_STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "conditions": conditions.set_condition(
        [],
        kind=conditions.Type.READY,
        status=conditions.Status.FALSE,
        reason="RolloutPaused",
        message="2 nodes failed, more than rollout.maxFailedNodes (1)",
        observed_generation=1,
        now=NOW,
    ),
    "run": {
        "id": "columns-20261129-1800",
        "trigger": Trigger.SCHEDULE.value,
        "mode": Mode.ENFORCE.value,
        "startTime": "2026-11-29T18:00:00Z",
        "completionTime": "2026-11-29T18:04:00Z",
        "paused": True,
        "pausedReason": "2 nodes failed, more than rollout.maxFailedNodes (1)",
        "nodes": {"matched": 12, "pending": 4, "running": 0, "succeeded": 6, "failed": 2},
        "imagesRemoved": 37,
        "bytesReclaimed": 1_610_612_736,
        "reclaimed": "1.5Gi",
        "candidates": 0,
        "candidateBytes": 0,
    },
    "lastScheduleTime": "2026-11-29T18:00:00Z",
    "nextRunTime": "2026-11-30T18:00:00Z",
    "failedNodes": [
        {"node": "node-a", "reason": "RuntimeUnavailable", "message": "no CRI runtime answers"},
        {"node": "node-b", "reason": "AgentTimeout", "message": "no report in 10m"},
    ],
}


def test_policy_status_and_columns(kube_control_plane: ControlPlane) -> None:
    plane = kube_control_plane
    spec = {"mode": "Enforce", "schedule": "0 18 * * *"}
    assert crds.apply(plane, _policy("columns", spec)).returncode == 0
    _patch_status(plane, names.POLICY_PLURAL, "columns", POLICY_STATUS)

    stored = plane.get(names.POLICY_PLURAL, "columns")
    assert stored["status"] == POLICY_STATUS

    table = plane.kubectl("get", names.POLICY_SHORT, "columns").stdout.splitlines()
    assert table[0].split() == [
        "NAME", "MODE", "NODES", "SUCCEEDED", "FAILED", "RECLAIMED", "LAST", "RUN", "READY", "AGE",
    ]  # fmt: skip
    assert table[1].split()[:6] == ["columns", "Enforce", "12", "6", "2", "1.5Gi"]
    assert table[1].split()[7] == "False"
    wide = plane.kubectl("get", names.POLICY_SHORT, "columns", "-o", "wide").stdout
    header, row = wide.splitlines()
    assert header.split()[-4:] == ["SCHEDULE", "TRIGGER", "CANDIDATES", "MESSAGE"]
    for text in ("0 18 * * *", "Schedule", "2 nodes failed, more than rollout.maxFailedNodes"):
        assert text in row
    # The category lists policies (and tasks) together.
    listed = plane.kubectl("get", names.CATEGORY, "-o", "name").stdout.split()
    assert f"imageprunepolicy.{names.GROUP}/columns" in listed


def test_status_refuses_what_the_schema_does_not_allow(kube_control_plane: ControlPlane) -> None:
    plane = kube_control_plane
    assert crds.apply(plane, _policy("bounded", {})).returncode == 0
    too_many = [{"node": f"node-{i}", "reason": "Failed"} for i in range(11)]
    bad_condition = copy.deepcopy(POLICY_STATUS["conditions"])
    bad_condition[0]["reason"] = "not camel case"
    for status, message in [
        ({"failedNodes": too_many}, "must have at most 10 items"),
        ({"conditions": bad_condition}, "status.conditions[0].reason"),
        ({"run": {"trigger": "Cron"}}, 'supported values: "Schedule", "Create"'),
    ]:
        result = plane.kubectl(
            "patch", names.POLICY_PLURAL, "bounded", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}), check=False,
        )  # fmt: skip
        assert result.returncode != 0, status
        assert message in result.stderr, result.stderr


TASK_SPEC = task.TaskSpec(
    node_name="node-1.example.internal",
    policy_name="owner",
    policy_generation=1,
    run_id="owner-1",
    trigger=Trigger.CREATE,
    mode=Mode.DRY_RUN,
    # As the operator copies it from a policy the apiserver has defaulted.
    selection={
        "scope": "Unused",
        "unusedFor": "2m",
        "diskUsage": {"highPercent": 80, "lowPercent": 60},
        "sandboxImages": ["registry.k8s.io/pause:*", "registry.k8s.io/pause@*"],
    },
    requested_at=NOW,
)

TASK_STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "runId": "owner-1",
    "trigger": "Create",
    "startTime": "2026-11-29T18:00:01Z",
    "completionTime": "2026-11-29T18:00:03Z",
    "message": "dry run: 2 images would go",
    "conditions": conditions.set_condition(
        [],
        kind=conditions.Type.READY,
        status=conditions.Status.TRUE,
        reason="RunCompleted",
        message="dry run: 2 images would go",
        observed_generation=1,
        now=NOW,
    ),
    "report": {
        "dryRun": True,
        "startTime": "2026-11-29T18:00:01Z",
        "completionTime": "2026-11-29T18:00:03Z",
        "imagesSeen": 9,
        "verdicts": {"InUse": 4, "SandboxImage": 1, "Excluded": 2, "Removable": 2},
        "outcomes": {"WouldRemove": 2},
        "removedImages": 0,
        "removedBytes": 0,
        "imageFs": {
            "mountpoint": "/var/lib/containerd",
            "capacityBytes": 100_000_000_000,
            "usedBytesBefore": 85_000_000_000,
        },
        "results": [
            {
                "id": "sha256:" + "a" * 64,
                "repoTags": ["docker.io/library/nginx:1.25"],
                "size": 70_000_000,
                "outcome": "WouldRemove",
                "detail": "unused for 9d",
            },
        ],
        "resultsTruncated": 1,
        "kept": [
            {
                "id": "sha256:" + "b" * 64,
                "repoTags": ["registry.k8s.io/pause:3.10"],
                "size": 320_000,
                "reason": "SandboxImage",
                "detail": "the runtime's pod sandbox image (registry.k8s.io/pause:3.10)",
            },
        ],
        "keptTruncated": 6,
        "errors": [{"kind": "RemoveFailed", "count": 1, "example": "image is in use"}],
        "unmatchedExcludes": ["quay.io/never/*"],
    },
}


def test_task_lifecycle(kube_control_plane: ControlPlane) -> None:
    plane = kube_control_plane
    assert crds.apply(plane, _policy("owner", {})).returncode == 0
    uid = plane.get(names.POLICY_PLURAL, "owner")["metadata"]["uid"]
    other_node = dataclasses.replace(TASK_SPEC, node_name="node-2.example.internal")
    for spec in (TASK_SPEC, other_node):
        result = crds.apply(plane, task.manifest(spec, policy_uid=uid))
        assert result.returncode == 0, result.stderr
    name = task.task_name("owner", TASK_SPEC.node_name)

    stored = plane.get(names.TASK_PLURAL, name)
    assert task.spec_from_dict(stored["spec"]) == TASK_SPEC
    assert stored["metadata"]["ownerReferences"][0]["uid"] == uid

    # An agent watches only its own tasks, filtered by the apiserver.
    mine = plane.get(names.TASK_PLURAL, f"--field-selector=spec.nodeName={TASK_SPEC.node_name}")
    assert [item["metadata"]["name"] for item in mine["items"]] == [name]
    by_label = plane.get(names.TASK_PLURAL, "-l", f"{names.POLICY_LABEL}=owner")
    assert len(by_label["items"]) == 2

    _patch_status(plane, names.TASK_PLURAL, name, TASK_STATUS)
    assert plane.get(names.TASK_PLURAL, name)["status"] == TASK_STATUS
    # A dry run leaves the usage after unknown: null is kept (a merge patch would delete it).
    unknown_after = {"op": "add", "path": "/status/report/imageFs/usedBytesAfter", "value": None}
    plane.kubectl(
        "patch", names.TASK_PLURAL, name, "--subresource=status", "--type=json",
        "-p", json.dumps([unknown_after]),
    )  # fmt: skip
    image_fs = plane.get(names.TASK_PLURAL, name)["status"]["report"]["imageFs"]
    assert image_fs["usedBytesAfter"] is None
    header, row = plane.kubectl("get", names.TASK_SHORT, name).stdout.splitlines()
    assert header.split() == ["NAME", "NODE", "POLICY", "RUN", "READY", "REMOVED", "AGE"]
    assert row.split()[:6] == [name, TASK_SPEC.node_name, "owner", "owner-1", "True", "0"]

    # A task belongs to one node and one policy for life.
    for field in ("nodeName", "policyName"):
        moved = plane.kubectl(
            "patch", names.TASK_PLURAL, name, "--type=merge",
            "-p", json.dumps({"spec": {field: "elsewhere"}}), check=False,
        )  # fmt: skip
        assert moved.returncode != 0
        assert f"{field} is immutable" in moved.stderr, moved.stderr


def test_task_selection_is_validated_like_the_policy(kube_control_plane: ControlPlane) -> None:
    bad = dataclasses.replace(TASK_SPEC, selection={"unusedFor": "7days"})
    result = crds.apply(kube_control_plane, task.manifest(bad, policy_uid="0"))
    assert result.returncode != 0
    assert "spec.selection.unusedFor" in result.stderr
    assert "must be a duration" in result.stderr
