"""The prune report document (CLI `-o json`, the agent's task status): one shape for
a dry run and a real run, counts that are never truncated, one entry per error kind."""

from __future__ import annotations

import json

import pytest

from imageprune.node import executor, report
from testkit import pruneruns

pytestmark = pytest.mark.unit

Outcome = executor.Outcome
IMAGES = pruneruns.IMAGES
_run = pruneruns.prune_run


DRY = [(Outcome.WOULD_REMOVE, "")] * 5
REAL = [
    (Outcome.REMOVED, ""),
    (Outcome.UNKNOWN, "RuntimeUnavailable"),
    (Outcome.NOT_ATTEMPTED, "RuntimeGone"),
    (Outcome.NOT_ATTEMPTED, "RuntimeGone"),
    (Outcome.REMOVED, ""),
]


def test_dry_and_real_runs_have_the_same_keys_everywhere() -> None:
    dry = report.document(_run(DRY, dry_run=True))
    real = report.document(_run(REAL, dry_run=False))
    assert dry.keys() == real.keys()
    assert dry["results"][0].keys() == real["results"][0].keys()  # type: ignore[index]
    assert dry["imageFs"].keys() == real["imageFs"].keys()  # type: ignore[union-attr]
    assert (dry["dryRun"], real["dryRun"]) == (True, False)
    json.dumps(real)  # plain JSON types only


def test_counts_and_measurements() -> None:
    doc = report.document(_run(REAL, dry_run=False))
    assert doc["startTime"] == "2025-01-01T00:00:00Z"
    assert doc["completionTime"] == "2025-01-01T00:00:03Z"
    assert doc["imagesSeen"] == 6
    assert doc["verdicts"] == {"Removable": 5, "Excluded": 1}
    assert doc["outcomes"] == {"Removed": 2, "Unknown": 1, "NotAttempted": 2}
    assert (doc["removedImages"], doc["removedBytes"]) == (2, 100 + 500)
    assert doc["imageFs"] == {
        "mountpoint": "/var/lib/x",
        "capacityBytes": 1000,
        "usedBytesBefore": 900,
        "usedBytesAfter": 700,
    }
    assert doc["errors"] == [
        {"kind": "RuntimeGone", "count": 2, "example": f"{IMAGES[2].id}: d3"},
        {"kind": "RuntimeUnavailable", "count": 1, "example": f"{IMAGES[1].id}: d2"},
    ]
    assert doc["unmatchedExcludes"] == ["typo*"]


def test_a_dry_run_counts_what_it_would_take_and_measures_once() -> None:
    doc = report.document(_run(DRY, dry_run=True))
    assert (doc["removedImages"], doc["removedBytes"]) == (5, 1500)
    assert doc["imageFs"]["usedBytesAfter"] is None  # type: ignore[index]
    assert doc["errors"] == []


def test_max_results_truncates_the_list_never_the_counts() -> None:
    doc = report.document(_run(REAL, dry_run=False), max_results=2)
    assert [r["id"] for r in doc["results"]] == [IMAGES[0].id, IMAGES[1].id]  # type: ignore[attr-defined]
    assert doc["resultsTruncated"] is True
    assert doc["outcomes"] == {"Removed": 2, "Unknown": 1, "NotAttempted": 2}
    assert report.document(_run(REAL, dry_run=False), max_results=5)["resultsTruncated"] is False
