"""The CRD's CEL string rules and the Python parsers accept the same values, so a policy
the apiserver takes is one every node takes (and a value refused on a node would have been
refused by `kubectl apply`). The rules' regexes are simple enough that Python's `re` and
the apiserver's RE2 read them alike."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from imageprune.policy import durations, quantities, references

pytestmark = pytest.mark.unit

CRD = (
    Path(__file__).resolve().parents[2]
    / "charts"
    / "imageprune"
    / "crds"
    / "imageprunepolicies.yaml"
)
(_VERSION,) = yaml.safe_load(CRD.read_text())["spec"]["versions"]
SPEC = _VERSION["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
_MATCHES = re.compile(r"matches\('([^']*)'\)")


def _regexes(schema: Any) -> list[re.Pattern[str]]:
    rules = " ".join(rule["rule"] for rule in schema["x-kubernetes-validations"])
    return [re.compile(text) for text in _MATCHES.findall(rules)]


def _crd_accepts_duration(text: str) -> bool:
    (regex,) = _regexes(SPEC["unusedFor"])
    return len(text) <= SPEC["unusedFor"]["maxLength"] and (text == "0" or bool(regex.search(text)))


def _crd_accepts_bytes(text: str) -> bool:
    shape, nonzero = _regexes(SPEC["limits"]["properties"]["maxBytesPerRun"])
    return len(text) <= 32 and bool(shape.search(text)) and bool(nonzero.search(text))


def _crd_accepts_pattern(text: str) -> bool:
    item = SPEC["include"]["items"]
    (regex,) = _regexes(item)
    return item["minLength"] <= len(text) <= item["maxLength"] and bool(regex.search(text))


@given(st.text(alphabet="0123456789.nsuµμmhdw-x ", max_size=12))
@example("1h30m")
@example("0")
@example(".5s")
@example("5.s")
def test_durations_agree(text: str) -> None:
    try:
        durations.parse_duration(text)
        problem = ""
    except ValueError as error:
        problem = str(error)
    # Only a duration too large for Python's timedelta passes the CRD and not a node.
    if "too large" not in problem:
        assert _crd_accepts_duration(text) == (not problem), text


@given(st.text(alphabet="0123456789.kMGTPEi mKe-", max_size=10))
@example("1.5G")
@example("0.0001")
@example("0Gi")
@example("500m")
def test_byte_quantities_agree(text: str) -> None:
    try:
        accepted = quantities.parse_bytes(text) >= 1
    except ValueError:
        accepted = False
    assert accepted == _crd_accepts_bytes(text), text


@given(st.text(alphabet="abc019./:@+=*?-_ Z\t", max_size=16))
@example("nginx:*")
@example("sha256:3f5a*")
def test_patterns_the_node_takes_pass_the_crd(text: str) -> None:
    try:
        references.Pattern(text)
    except ValueError:
        return
    assert _crd_accepts_pattern(text), text
