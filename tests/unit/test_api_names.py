"""The names in imageprune.api.names are the ones the CRD files declare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from imageprune.api import names

pytestmark = pytest.mark.unit

CRDS = Path(__file__).resolve().parents[2] / "charts" / "imageprune" / "crds"


def _crd(file: str) -> Any:
    return yaml.safe_load((CRDS / file).read_text())


@pytest.mark.parametrize(
    ("file", "kind", "plural", "short"),
    [
        ("imageprunepolicies.yaml", names.POLICY_KIND, names.POLICY_PLURAL, names.POLICY_SHORT),
        ("imageprunetasks.yaml", names.TASK_KIND, names.TASK_PLURAL, names.TASK_SHORT),
    ],
)
def test_crd_names_match(file: str, kind: str, plural: str, short: str) -> None:
    crd = _crd(file)
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{plural}.{names.GROUP}"
    assert spec["group"] == names.GROUP
    assert spec["scope"] == "Cluster"
    assert spec["names"]["kind"] == kind
    assert spec["names"]["plural"] == plural
    assert spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == [names.CATEGORY]
    assert [v["name"] for v in spec["versions"]] == [names.VERSION]
    assert names.API_VERSION == "imageprune.io/v1alpha1"


def test_labels_and_annotation_live_under_the_group() -> None:
    for key in (names.POLICY_LABEL, names.NODE_LABEL, names.RUN_NOW_ANNOTATION, names.FINALIZER):
        assert key.startswith(f"{names.GROUP}/")
    assert names.KOPF_PREFIX == names.GROUP
