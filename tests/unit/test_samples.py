"""Every sample in deploy/samples/ parses as the node CLI (`prune --policy`) and the
operator read it. tests/k8s/test_samples.py applies each to a real apiserver."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imageprune.api import policy
from imageprune.policy import selection

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
FILES = sorted(SAMPLES.glob("*.yaml"))


def test_the_promised_samples_exist() -> None:
    assert {path.name for path in FILES} >= {
        "policy.yaml",
        "nightly-enforce.yaml",
        "dry-run-audit.yaml",
        "disk-pressure-guard.yaml",
        "ci-runners-keep-last-3.yaml",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_sample_parses(path: Path) -> None:
    text = path.read_text()
    selection.selection_from_spec(selection.manifest_spec(text))
    manifest = yaml.safe_load(text)
    assert manifest["metadata"]["name"] == path.stem or path.name == "policy.yaml"
    policy.parse_spec(manifest["spec"])
