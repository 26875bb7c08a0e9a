from __future__ import annotations

import datetime
import re

import pytest

from imageprune.policy import references
from imageprune.policy.selection import (
    CLUSTER_FIELDS,
    DEFAULT_SANDBOX_IMAGES,
    DEFAULT_UNUSED_FOR,
    MAX_PATTERNS,
    SELECTION_FIELDS,
    DiskTarget,
    PolicyError,
    Scope,
    Selection,
    manifest_spec,
    selection_from_spec,
)
from testkit import builders

pytestmark = pytest.mark.unit


def test_empty_spec_selects_every_image_unused_for_two_minutes() -> None:
    assert selection_from_spec({}) == Selection(unused_for=datetime.timedelta(minutes=2))
    assert datetime.timedelta(minutes=2) == DEFAULT_UNUSED_FOR
    assert Selection().scope is Scope.UNUSED


def test_the_cli_asks_for_no_default_age() -> None:
    assert selection_from_spec({}, unused_for_default=None) == Selection()


def test_an_explicit_zero_age_goes_below_the_default() -> None:
    selection = selection_from_spec({"unusedFor": "0s"})
    assert selection.unused_for == datetime.timedelta(0)


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
            "sandboxImages": ["registry.example.com/pause:*"],
            # Owned by the operator, not the selection: accepted, ignored.
            "mode": "DryRun",
            "suspend": True,
            "nodeSelector": {"matchLabels": {"kubernetes.io/os": "linux"}},
            "schedule": "0 3 * * *",
            "timeZone": "Europe/Berlin",
            "rollout": {"maxConcurrentNodes": "25%"},
        }
    )
    assert selection == Selection(
        sandbox_images=(references.Pattern("registry.example.com/pause:*"),),
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
    spec: dict[str, object] = dict.fromkeys((*absent, "sandboxImages"))
    spec["limits"] = {"maxImagesPerRun": None}
    assert selection_from_spec(spec, unused_for_default=None) == Selection()


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
        (
            {"keepLatestPerRepository": 1.5},
            "spec.keepLatestPerRepository: must be an integer (got a number)",
        ),
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
            "spec.diskUsage.lowPercnt: unknown field; did you mean lowPercent?",
        ),
        (
            {"diskUsage": {"highPercent": 85, "lowPercent": 80, "target": 1}},
            "spec.diskUsage.target: unknown field; expected one of highPercent, lowPercent",
        ),
        ({"limits": {"maxImagesPerRun": 0}}, "spec.limits.maxImagesPerRun: must be at least 1"),
        ({"limits": {"maxImages": 5}}, "spec.limits.maxImages: unknown field"),
        ({"limits": {"maxBytesPerRun": "10GB"}}, "spec.limits.maxBytesPerRun: invalid byte"),
        ({"limits": {"maxBytesPerRun": 0}}, "spec.limits.maxBytesPerRun: must be at least 1"),
        ({"limits": {"maxBytesPerRun": 1.5}}, "spec.limits.maxBytesPerRun: must be an integer"),
        ({"limits": ["x"]}, "spec.limits: must be a mapping (got a list)"),
        ({"limits": {"maxImagesPerRun": 2**63}}, "spec.limits.maxImagesPerRun: must be at most"),
        ({"limits": {"maxBytesPerRun": 2**9000}}, "spec.limits.maxBytesPerRun: must be at most"),
        (
            {"keepLatestPerRepository": -(2**9000)},
            "spec.keepLatestPerRepository: must be at least 0 (got a huge integer)",
        ),
        ({"unusedFor": "9" * 5000 + "s"}, "spec.unusedFor: invalid duration '99999"),
        ({"limits": {"maxBytesPerRun": "9" * 5000}}, "spec.limits.maxBytesPerRun: invalid byte"),
        ({"scope": "x" * 10_000}, "spec.scope: must be one of Unused, Dangling (got 'xxx"),
        # Values are shown whole up to 60 characters, quotes included, else cut to 57 + "...".
        ({"scope": "x" * 58}, f"spec.scope: must be one of Unused, Dangling (got '{'x' * 58}')"),
        ({"scope": "x" * 59}, f"spec.scope: must be one of Unused, Dangling (got '{'x' * 56}...)"),
        ({"scope": 1.5}, "spec.scope: must be a string (got a number)"),
        ({"scope": {}}, "spec.scope: must be a string (got a mapping)"),
        # YAML reads an unquoted 2024-01-01 as a date.
        ({"scope": datetime.date(2024, 1, 1)}, "spec.scope: must be a string (got date)"),
        (
            {"keepLatestPerRepository": -(2**127)},  # 128 bits: still shown
            f"spec.keepLatestPerRepository: must be at least 0 (got {-(2**127)})",
        ),
        (
            {"keepLatestPerRepository": -(2**128)},
            "spec.keepLatestPerRepository: must be at least 0 (got a huge integer)",
        ),
        ({"include": ["a"] * 257}, "spec.include: 257 patterns; at most 256 allowed"),
        ({"sandboxImages": "pause"}, "spec.sandboxImages: must be a list of image patterns"),
        ({"sandboxImages": ["pause:"]}, "spec.sandboxImages[0]: invalid image pattern 'pause:'"),
    ],
)
def test_errors_name_the_field(spec: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        selection_from_spec(spec)
    assert str(caught.value).startswith(message)
    assert caught.value.where == message.partition(":")[0]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("unusedfor", "spec.unusedfor: unknown field; did you mean unusedFor?"),
        ("unused_for", "spec.unused_for: unknown field; did you mean unusedFor?"),
        ("UNUSEDFOR", "spec.UNUSEDFOR: unknown field; did you mean unusedFor?"),
        ("keepLatest", "spec.keepLatest: unknown field; did you mean keepLatestPerRepository?"),
        ("exlude", "spec.exlude: unknown field; did you mean exclude?"),
        ("sandboxImage", "spec.sandboxImage: unknown field; did you mean sandboxImages?"),
        ("maxImagesPerRun", "spec.maxImagesPerRun: unknown field; did you mean limits."),
        ("dryRun", "spec.dryRun: unknown field; expected one of diskUsage, exclude, include,"),
        (1, "spec.1: unknown field: a field name is a string, not an integer"),
        (True, "spec.True: unknown field: a field name is a string, not a boolean"),
        (None, "spec.null: unknown field: a field name is a string, not null"),
        ("x" * 5000, "spec.xxxxx"),
    ],
)
def test_unknown_top_level_fields_are_errors(key: object, message: str) -> None:
    # A misspelt unusedFor once meant no age limit at all.
    with pytest.raises(PolicyError) as caught:
        selection_from_spec({"unusedFor": "7d", key: "7d"})  # type: ignore[dict-item]
    assert str(caught.value).startswith(message)
    assert len(str(caught.value)) < 400


def test_unknown_field_lists_every_accepted_field() -> None:
    with pytest.raises(PolicyError) as caught:
        selection_from_spec({"dryRun": True})
    listed = str(caught.value).partition("expected one of ")[2].split(", ")
    assert set(listed) == SELECTION_FIELDS | CLUSTER_FIELDS


def test_cluster_fields_are_accepted_and_ignored() -> None:
    assert {"mode", "suspend", "nodeSelector", "schedule", "timeZone", "rollout"} == CLUSTER_FIELDS
    spec = dict.fromkeys(CLUSTER_FIELDS, "anything")
    assert selection_from_spec(spec) == selection_from_spec({})


def test_selection_fields_are_what_the_parser_reads() -> None:
    # Each field changes the result, so none is listed without being parsed.
    values: dict[str, object] = {
        "scope": "Dangling",
        "include": ["a"],
        "exclude": ["a"],
        "unusedFor": "1h",
        "olderThan": "1h",
        "keepLatestPerRepository": 1,
        "diskUsage": {"highPercent": 90, "lowPercent": 80},
        "limits": {"maxImagesPerRun": 1},
        "sandboxImages": [],
    }
    assert values.keys() == SELECTION_FIELDS
    for field, value in values.items():
        assert selection_from_spec({field: value}) != selection_from_spec({}), field


@pytest.mark.parametrize("text", ["unused", "UNUSED", "Unused", "dangling", "DANGLING"])
def test_scope_takes_any_case(text: str) -> None:
    assert selection_from_spec({"scope": text}).scope.value.lower() == text.lower()


class TestSandboxImages:
    def test_default_patterns_protect_common_pause_images(self) -> None:
        default = selection_from_spec({}).sandbox_images
        assert default == Selection().sandbox_images
        assert tuple(map(str, default)) == DEFAULT_SANDBOX_IMAGES
        for repository in ("registry.k8s.io/pause", "k8s.gcr.io/pause", "gke.gcr.io/pause"):
            assert f"{repository}:*" in DEFAULT_SANDBOX_IMAGES
            assert f"{repository}@*" in DEFAULT_SANDBOX_IMAGES

    def test_setting_the_field_replaces_the_default(self) -> None:
        selection = selection_from_spec({"sandboxImages": ["registry.example.com/pause:*"]})
        assert selection.sandbox_images == (references.Pattern("registry.example.com/pause:*"),)
        assert selection_from_spec({"sandboxImages": []}).sandbox_images == ()


def test_policy_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"spec\.scope"):
        selection_from_spec({"scope": "All"})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"keep_latest_per_repository": -1}, "keep_latest_per_repository must not be negative"),
        ({"max_images": 0}, "max_images must be at least 1 (None means no limit)"),
        ({"max_bytes": 0}, "max_bytes must be at least 1 (None means no limit)"),
        ({"unused_for": datetime.timedelta(seconds=-1)}, "unused_for must not be negative"),
        ({"older_than": datetime.timedelta(seconds=-1)}, "older_than must not be negative"),
    ],
)
def test_selection_refuses_impossible_values(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Selection(**arguments)  # type: ignore[arg-type]


def test_the_extreme_values_each_field_takes_are_accepted() -> None:
    # One step beyond each is refused (test_errors_name_the_field).
    selection = selection_from_spec(
        {
            "include": ["nginx"] * MAX_PATTERNS,
            "keepLatestPerRepository": 2**63 - 1,
            "diskUsage": {"highPercent": 100, "lowPercent": 0.5},
        }
    )
    assert len(selection.include) == MAX_PATTERNS
    assert selection.keep_latest_per_repository == 2**63 - 1
    assert selection.disk == DiskTarget(high_percent=100, low_percent=0.5)


@pytest.mark.parametrize(("high", "low"), [(85, 85), (80, 85), (101, 80), (85, 0)])
def test_disk_target_needs_low_below_high(high: float, low: float) -> None:
    with pytest.raises(ValueError, match="disk target needs"):
        DiskTarget(high_percent=high, low_percent=low)


POLICY = builders.POLICY_MANIFEST


def load_policy_manifest(text: str) -> Selection:
    return selection_from_spec(manifest_spec(text))


def test_loads_a_policy_manifest() -> None:
    selection = load_policy_manifest(POLICY)
    assert selection.unused_for == datetime.timedelta(days=7)
    assert selection.exclude == (references.Pattern("registry.k8s.io/*"),)


def test_a_manifest_without_unused_for_waits_two_minutes() -> None:
    selection = load_policy_manifest(POLICY.replace("  unusedFor: 7d\n", ""))
    assert selection.unused_for == DEFAULT_UNUSED_FOR
    assert load_policy_manifest(POLICY.replace("7d", "0s")).unused_for == datetime.timedelta(0)


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
        (
            "kind: [ImagePrunePolicy]\n---\nkind: {a: b}\n",
            "kind: no ImagePrunePolicy in the manifest (found kinds: a list, a mapping)",
        ),
        (
            "unusedFor: 7d\nmode: Enforce\n",
            "kind: no ImagePrunePolicy in the manifest (found kinds: null; the file must hold "
            "the whole manifest: apiVersion, kind: ImagePrunePolicy, spec)",
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
        (POLICY.replace("unusedFor: 7d", "unusedfor: 7d"), "spec.unusedfor: unknown field; did"),
        (POLICY.replace("unusedFor: 7d", "1: 7d"), "spec.1: unknown field"),
        (POLICY.replace("unusedFor: 7d", "on: 7d"), "spec.True: unknown field"),
        ("kind: " + "x" * 100_000, "kind: no ImagePrunePolicy in the manifest (found kinds: xxx"),
        (POLICY.replace("v1alpha1", "v" * 100_000), "apiVersion: must be imageprune.io/v1al"),
    ],
)
def test_manifest_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_manifest(text)
    assert str(caught.value).startswith(message)
    assert len(str(caught.value)) < 400  # a huge value is not echoed whole
