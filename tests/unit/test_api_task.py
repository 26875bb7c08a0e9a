from __future__ import annotations

import datetime
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imageprune.api import names, task
from imageprune.api.policy import Mode, Trigger
from imageprune.api.task import TaskSpec
from imageprune.policy.selection import PolicyError

pytestmark = pytest.mark.unit

# Object names are DNS subdomains; label values are at most 63 of [A-Za-z0-9-_.].
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
_NAMES = st.lists(_LABEL, min_size=1, max_size=14).map(".".join).filter(lambda n: len(n) <= 253)

SPEC = TaskSpec(
    node_name="ip-10-0-0-1.ec2.internal",
    policy_name="nightly",
    policy_generation=3,
    run_id="nightly-20261129-0300",
    trigger=Trigger.SCHEDULE,
    mode=Mode.ENFORCE,
    selection={"scope": "Unused", "unusedFor": "2m"},
    requested_at=datetime.datetime(2026, 11, 29, 3, 0, tzinfo=datetime.UTC),
)


def test_short_names_read_policy_dot_node() -> None:
    assert (
        task.task_name("nightly", "ip-10-0-0-1.ec2.internal") == "nightly.ip-10-0-0-1.ec2.internal"
    )


def test_a_dotted_policy_name_cannot_collide() -> None:
    # "a.b" + "c" and "a" + "b.c" would both read "a.b.c".
    assert task.task_name("a.b", "c") != task.task_name("a", "b.c")
    assert task.task_name("a", "b.c") == "a.b.c"
    assert task.task_name("a.b", "c").startswith("a.b.c-")


def test_long_names_are_cut_and_hashed() -> None:
    name = task.task_name("p" * 200, "n" * 200)
    assert len(name) == task.MAX_NAME
    assert name.startswith("p" * 200 + ".")
    assert name != task.task_name("p" * 200, "n" * 199 + "m")


@given(_NAMES, _NAMES)
def test_task_names_are_valid_and_deterministic(policy: str, node: str) -> None:
    name = task.task_name(policy, node)
    assert len(name) <= task.MAX_NAME
    assert _SUBDOMAIN.fullmatch(name), name
    assert task.task_name(policy, node) == name


@given(_NAMES, _NAMES, _NAMES, _NAMES)
def test_distinct_pairs_get_distinct_names(p1: str, n1: str, p2: str, n2: str) -> None:
    if (p1, n1) != (p2, n2):
        assert task.task_name(p1, n1) != task.task_name(p2, n2)


@given(_NAMES)
def test_label_values_are_valid(name: str) -> None:
    value = task.label_value(name)
    assert len(value) <= task.MAX_LABEL_VALUE
    assert _LABEL_VALUE.fullmatch(value), value
    assert (value == name) == (len(name) <= task.MAX_LABEL_VALUE)


def test_spec_round_trips() -> None:
    body = SPEC.to_dict()
    assert body == {
        "nodeName": "ip-10-0-0-1.ec2.internal",
        "policyName": "nightly",
        "policyGeneration": 3,
        "runId": "nightly-20261129-0300",
        "trigger": "Schedule",
        "mode": "Enforce",
        "selection": {"scope": "Unused", "unusedFor": "2m"},
        "requestedAt": "2026-11-29T03:00:00Z",
    }
    assert task.spec_from_dict(body) == SPEC


def test_manifest_names_labels_and_owns() -> None:
    body = task.manifest(SPEC, policy_uid="1234")
    assert body["apiVersion"] == names.API_VERSION
    assert body["kind"] == names.TASK_KIND
    assert body["metadata"] == {
        "name": "nightly.ip-10-0-0-1.ec2.internal",
        "labels": {names.POLICY_LABEL: "nightly", names.NODE_LABEL: "ip-10-0-0-1.ec2.internal"},
        "ownerReferences": [
            {
                "apiVersion": names.API_VERSION,
                "kind": names.POLICY_KIND,
                "name": "nightly",
                "uid": "1234",
                "controller": True,
            }
        ],
    }
    assert body["spec"] == SPEC.to_dict()


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"nodeName": ""}, "spec.nodeName"),
        ({"policyName": None}, "spec.policyName"),
        ({"policyGeneration": "3"}, "spec.policyGeneration"),
        ({"policyGeneration": True}, "spec.policyGeneration"),
        ({"runId": 7}, "spec.runId"),
        ({"trigger": "Cron"}, "spec.trigger"),
        ({"mode": "dryrun"}, "spec.mode"),
        ({"selection": []}, "spec.selection"),
        ({"requestedAt": "yesterday"}, "spec.requestedAt"),
        ({"requestedAt": "2026-11-29T03:00:00"}, "spec.requestedAt"),
    ],
)
def test_spec_from_dict_names_the_bad_field(change: dict[str, object], where: str) -> None:
    with pytest.raises(PolicyError) as raised:
        task.spec_from_dict({**SPEC.to_dict(), **change})
    assert raised.value.where == where
