from __future__ import annotations

import datetime

import pytest

from imageprune.policy import references
from imageprune.policy.selection import (
    DiskTarget,
    PolicyError,
    Scope,
    Selection,
    load_policy_manifest,
    selection_from_spec,
)

pytestmark = pytest.mark.unit


def test_empty_spec_selects_every_unused_image() -> None:
    assert selection_from_spec({}) == Selection()
    assert Selection().scope is Scope.UNUSED


def test_full_spec() -> None:
    selection = selection_from_spec(
        {
            "scope": "Dangling",
            "include": ["myorg/*", "quay.io/a/b"],
            "exclude": ["registry.k8s.io/*"],
            "unusedFor": "7d",
            "olderThan": "720h",
            "keepLatestPerRepository": 2,
            "diskUsage": {"highPercent": 85, "lowPercent": 70.5},
            "limits": {"maxImagesPerRun": 50, "maxBytesPerRun": "10Gi"},
            # Owned by the operator, not the selection:
            "mode": "DryRun",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "schedule": "0 3 * * *",
        }
    )
    assert selection == Selection(
        scope=Scope.DANGLING,
        include=(references.Pattern("myorg/*"), references.Pattern("quay.io/a/b")),
        exclude=(references.Pattern("registry.k8s.io/*"),),
        unused_for=datetime.timedelta(days=7),
        older_than=datetime.timedelta(days=30),
        keep_latest_per_repository=2,
        disk=DiskTarget(high_percent=85, low_percent=70.5),
        max_images=50,
        max_bytes=10 * 2**30,
    )


def test_nulls_count_as_absent() -> None:
    absent = ("scope", "include", "unusedFor", "keepLatestPerRepository", "diskUsage")
    spec: dict[str, object] = dict.fromkeys(absent)
    spec["limits"] = {"maxImagesPerRun": None}
    assert selection_from_spec(spec) == Selection()


def test_byte_limit_may_be_a_plain_integer() -> None:
    assert selection_from_spec({"limits": {"maxBytesPerRun": 1000}}).max_bytes == 1000


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"scope": "All"}, "spec.scope: must be one of Unused, Dangling (got 'All')"),
        ({"scope": 1}, "spec.scope: must be a string (got an integer)"),
        ({"include": "nginx"}, "spec.include: must be a list of image patterns (got a string)"),
        ({"include": ["ok", 3]}, "spec.include[1]: must be a string (got an integer)"),
        ({"exclude": ["ok", ""]}, "spec.exclude[1]: image pattern must not be empty"),
        ({"exclude": ["a b"]}, "spec.exclude[0]: invalid image pattern 'a b': must not contain"),
        ({"unusedFor": "7 days"}, "spec.unusedFor: invalid duration '7 days': expected"),
        ({"unusedFor": 7}, "spec.unusedFor: must be a string (got an integer)"),
        ({"olderThan": "-1d"}, "spec.olderThan: invalid duration '-1d': must not be negative"),
        ({"keepLatestPerRepository": -1}, "spec.keepLatestPerRepository: must be at least 0"),
        ({"keepLatestPerRepository": True}, "spec.keepLatestPerRepository: must be an integer"),
        ({"keepLatestPerRepository": 1.5}, "spec.keepLatestPerRepository: must be an integer"),
        ({"diskUsage": 85}, "spec.diskUsage: must be a mapping (got an integer)"),
        ({"diskUsage": {"highPercent": 85}}, "spec.diskUsage.lowPercent: required"),
        (
            {"diskUsage": {"highPercent": 85, "lowPercent": 90}},
            "spec.diskUsage.lowPercent: must be less than highPercent (85)",
        ),
        (
            {"diskUsage": {"highPercent": 85, "lowPercent": 85}},
            "spec.diskUsage.lowPercent: must be less than highPercent (85)",
        ),
        (
            {"diskUsage": {"highPercent": 101, "lowPercent": 80}},
            "spec.diskUsage.highPercent: must be more than 0 and at most 100 (got 101)",
        ),
        (
            {"diskUsage": {"highPercent": 85, "lowPercent": 0}},
            "spec.diskUsage.lowPercent: must be more than 0",
        ),
        (
            {"diskUsage": {"highPercent": "85%", "lowPercent": 80}},
            "spec.diskUsage.highPercent: must be a number (got a string)",
        ),
        (
            {"diskUsage": {"highPercent": 85, "lowPercent": 80, "lowPercnt": 1}},
            "spec.diskUsage.lowPercnt: unknown field; expected one of highPercent, lowPercent",
        ),
        ({"limits": {"maxImagesPerRun": 0}}, "spec.limits.maxImagesPerRun: must be at least 1"),
        ({"limits": {"maxImages": 5}}, "spec.limits.maxImages: unknown field"),
        ({"limits": {"maxBytesPerRun": "10GB"}}, "spec.limits.maxBytesPerRun: invalid byte"),
        ({"limits": {"maxBytesPerRun": 0}}, "spec.limits.maxBytesPerRun: must be at least 1"),
        ({"limits": {"maxBytesPerRun": 1.5}}, "spec.limits.maxBytesPerRun: must be an integer"),
        ({"limits": ["x"]}, "spec.limits: must be a mapping (got a list)"),
    ],
)
def test_errors_name_the_field(spec: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        selection_from_spec(spec)
    assert str(caught.value).startswith(message)
    assert caught.value.where == message.partition(":")[0]


def test_policy_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"spec\.scope"):
        selection_from_spec({"scope": "All"})


@pytest.mark.parametrize(
    "arguments",
    [
        {"keep_latest_per_repository": -1},
        {"max_images": 0},
        {"max_bytes": 0},
        {"unused_for": datetime.timedelta(seconds=-1)},
        {"older_than": datetime.timedelta(seconds=-1)},
    ],
)
def test_selection_refuses_impossible_values(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        Selection(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(("high", "low"), [(85, 85), (80, 85), (101, 80), (85, 0)])
def test_disk_target_needs_low_below_high(high: float, low: float) -> None:
    with pytest.raises(ValueError, match="disk target needs"):
        DiskTarget(high_percent=high, low_percent=low)


POLICY = """\
apiVersion: imageprune.io/v1alpha1
kind: ImagePrunePolicy
metadata:
  name: weekly
spec:
  unusedFor: 7d
  exclude: ["registry.k8s.io/*"]
  schedule: "0 3 * * *"
"""


def test_loads_a_policy_manifest() -> None:
    selection = load_policy_manifest(POLICY)
    assert selection.unused_for == datetime.timedelta(days=7)
    assert selection.exclude == (references.Pattern("registry.k8s.io/*"),)


def test_finds_the_policy_among_other_documents() -> None:
    other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    assert load_policy_manifest(f"---\n{other}---\n{POLICY}---\n") == load_policy_manifest(POLICY)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "kind: no ImagePrunePolicy in the manifest (the manifest is empty)"),
        (
            "apiVersion: v1\nkind: ConfigMap\n---\nkind: Secret\n",
            "kind: no ImagePrunePolicy in the manifest (found kinds: ConfigMap, Secret)",
        ),
        (POLICY + "---\n" + POLICY, "kind: 2 ImagePrunePolicy documents; expected exactly one"),
        (
            POLICY.replace("v1alpha1", "v1"),
            "apiVersion: must be imageprune.io/v1alpha1 (got 'imageprune.io/v1')",
        ),
        (
            "apiVersion: imageprune.io/v1alpha1\nkind: ImagePrunePolicy\n",
            "spec: required",
        ),
        (
            "apiVersion: imageprune.io/v1alpha1\nkind: ImagePrunePolicy\nspec: [1]\n",
            "spec: must be a mapping (got a list)",
        ),
        ("- just\n- a list\n", "document 1: must be a Kubernetes object"),
        ("---\n---\n- a list\n", "document 2: must be a Kubernetes object"),
        (POLICY.replace("unusedFor: 7d", "unusedFor: 7 days"), "spec.unusedFor: invalid duration"),
        ("kind: ImagePrunePolicy\nspec:\n  unusedFor: 7d\n bad: 1\n", "line 4, column 2: invalid"),
        ("kind: [unclosed\n", "line 2, column 1: invalid YAML"),
    ],
)
def test_manifest_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_manifest(text)
    assert str(caught.value).startswith(message)
