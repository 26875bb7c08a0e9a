"""The chart's metadata agrees with the package and with its own values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import imageprune

pytestmark = pytest.mark.unit

CHART = Path(__file__).resolve().parents[2] / "charts" / "imageprune"


def test_app_version_is_the_package_version() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["appVersion"] == imageprune.__version__
    assert meta["kubeVersion"].startswith(">=1.32")


def test_schema_closes_every_object() -> None:
    """additionalProperties false wherever the keys are ours (maps of the user's own keys,
    such as labels, say what their values are instead)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if "properties" in node and node.get("additionalProperties") is not False:
            open_objects.append(path)
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    assert open_objects == []
