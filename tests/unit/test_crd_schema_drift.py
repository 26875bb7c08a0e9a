"""The CRD YAML is written by hand, so these tests keep it and the parsers in step: a
field the schema accepts but no parser reads (or the reverse), a default that differs, or
an enum that drifts fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from imageprune.api import conditions, labelselector, policy
from imageprune.api.policy import Mode, Trigger
from imageprune.policy import durations, selection

pytestmark = pytest.mark.unit

CRDS = Path(__file__).resolve().parents[2] / "charts" / "imageprune" / "crds"


def _schema(file: str) -> Any:
    (version,) = yaml.safe_load((CRDS / file).read_text())["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]["properties"]


POLICY = _schema("imageprunepolicies.yaml")
TASK = _schema("imageprunetasks.yaml")
POLICY_SPEC = POLICY["spec"]["properties"]
TASK_SELECTION = TASK["spec"]["properties"]["selection"]["properties"]


def test_policy_spec_fields_are_the_parsed_fields() -> None:
    assert set(POLICY_SPEC) == selection.SELECTION_FIELDS | selection.CLUSTER_FIELDS


@pytest.mark.parametrize("field", sorted(selection.SELECTION_FIELDS))
def test_the_node_parser_reads_every_selection_field(field: str) -> None:
    # A value of no valid type must be refused under the field's own name, which shows the
    # parser looks at the field rather than merely listing it.
    with pytest.raises(selection.PolicyError) as raised:
        selection.selection_from_spec({field: object()})
    assert raised.value.where.startswith(f"spec.{field}")


def test_task_selection_has_exactly_the_policy_selection_schema() -> None:
    expected = {field: POLICY_SPEC[field] for field in selection.SELECTION_FIELDS}
    assert expected == TASK_SELECTION


def test_defaults_match_the_parsers() -> None:
    assert POLICY_SPEC["sandboxImages"]["default"] == list(selection.DEFAULT_SANDBOX_IMAGES)
    assert (
        durations.parse_duration(POLICY_SPEC["unusedFor"]["default"])
        == selection.DEFAULT_UNUSED_FOR
    )
    assert POLICY_SPEC["scope"]["default"] == selection.Scope.UNUSED.value
    assert POLICY_SPEC["mode"]["default"] == Mode.DRY_RUN.value
    rollout = POLICY_SPEC["rollout"]["properties"]
    assert rollout["maxConcurrentNodes"]["default"] == policy.DEFAULT_MAX_CONCURRENT_NODES.to_json()
    assert rollout["maxFailedNodes"]["default"] == policy.DEFAULT_MAX_FAILED_NODES.to_json()
    assert durations.parse_duration(rollout["nodeTimeout"]["default"]) == (
        policy.DEFAULT_NODE_TIMEOUT
    )


def test_the_parsers_accept_every_default() -> None:
    defaults = {field: body["default"] for field, body in POLICY_SPEC.items() if "default" in body}
    parsed = policy.parse_spec(defaults)
    assert parsed.rollout == policy.Rollout()
    selection.selection_from_spec(parsed.selection)


@pytest.mark.parametrize(
    ("nested", "parse"),
    [
        ("diskUsage", lambda body: selection.selection_from_spec({"diskUsage": body})),
        ("limits", lambda body: selection.selection_from_spec({"limits": body})),
        ("rollout", lambda body: policy.parse_spec({"rollout": body})),
        ("nodeSelector", lambda body: policy.parse_spec({"nodeSelector": body})),
    ],
)
def test_nested_fields_are_known_to_the_parsers(nested: str, parse: Any) -> None:
    samples: dict[str, object] = {
        "highPercent": 80,
        "lowPercent": 60,
        "maxImagesPerRun": 5,
        "maxBytesPerRun": "1Gi",
        "maxConcurrentNodes": 1,
        "maxFailedNodes": 0,
        "nodeTimeout": "2h",
        "matchLabels": {"a": "b"},
        "matchExpressions": [{"key": "a", "operator": "Exists"}],
    }
    fields = POLICY_SPEC[nested]["properties"]
    parse({field: samples[field] for field in fields})
    with pytest.raises(selection.PolicyError, match="unknown field"):
        parse({**{field: samples[field] for field in fields}, "typo": 1})


def _enum(schema: Any) -> list[str]:
    return list(schema["enum"])


def test_enums_match() -> None:
    assert _enum(POLICY_SPEC["scope"]) == [scope.value for scope in selection.Scope]
    assert _enum(POLICY_SPEC["mode"]) == [mode.value for mode in Mode]
    expression = POLICY_SPEC["nodeSelector"]["properties"]["matchExpressions"]["items"]
    assert _enum(expression["properties"]["operator"]) == [o.value for o in labelselector.Operator]
    run = POLICY["status"]["properties"]["run"]["properties"]
    triggers = [trigger.value for trigger in Trigger]
    assert _enum(run["trigger"]) == triggers
    assert _enum(run["mode"]) == [mode.value for mode in Mode]
    assert _enum(TASK["spec"]["properties"]["trigger"]) == triggers
    assert _enum(TASK["spec"]["properties"]["mode"]) == [mode.value for mode in Mode]
    assert _enum(TASK["status"]["properties"]["trigger"]) == triggers
    for schema in (POLICY, TASK):
        condition = schema["status"]["properties"]["conditions"]["items"]["properties"]
        assert _enum(condition["status"]) == [status.value for status in conditions.Status]
        assert condition["message"]["maxLength"] == conditions.MAX_MESSAGE
        assert condition["reason"]["maxLength"] == conditions.MAX_REASON
