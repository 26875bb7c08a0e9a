"""docs/operations.md lists every metric the operator and the agent export, under the name
Prometheus scrapes, and names none they do not export."""

from __future__ import annotations

import re
from pathlib import Path

import prometheus_client
import pytest

from imageprune.agent import metrics as agent_metrics
from imageprune.cluster import metrics as cluster_metrics

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def exported() -> tuple[set[str], set[str]]:
    """(the name of each of our metric families as scraped, every sample name)."""
    families: set[str] = set()
    samples: set[str] = set()
    registries: list[prometheus_client.CollectorRegistry] = [
        cluster_metrics.REGISTRY,
        agent_metrics.Metrics().registry,
    ]
    for registry in registries:
        for family in registry.collect():
            if not family.name.startswith("imageprune_"):
                continue  # the process collector's
            families.add(family.name + "_total" if family.type == "counter" else family.name)
            samples.update(sample.name for sample in family.samples)
    return families, samples


def documented() -> set[str]:
    return set(re.findall(r"\bimageprune_[a-z_]+[a-z]", DOC.read_text()))


def test_the_registries_are_read() -> None:
    families, _ = exported()
    assert {"imageprune_runs_started_total", "imageprune_agent_runtime_up"} <= families


def test_every_metric_is_documented() -> None:
    missing = exported()[0] - documented()
    assert not missing, f"docs/operations.md lacks {sorted(missing)}"


def test_every_documented_metric_is_exported() -> None:
    families, samples = exported()
    unknown = documented() - families - samples
    assert not unknown, f"docs/operations.md names metrics nobody exports: {sorted(unknown)}"
