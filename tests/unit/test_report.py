"""The prune report document (CLI `-o json`, the agent's task status): one shape for
a dry run and a real run, counts that are never truncated, one entry per error kind."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from imageprune.agent import outcome
from imageprune.node import executor, planner, report, service
from imageprune_cri import types
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
    assert doc["resultsTruncated"] == 3
    assert doc["outcomes"] == {"Removed": 2, "Unknown": 1, "NotAttempted": 2}
    assert report.document(_run(REAL, dry_run=False), max_results=5)["resultsTruncated"] == 0


def test_the_document_fits_the_task_status_schema() -> None:
    """The agent stores it in ImagePruneTask status: the apiserver refuses more."""
    long_detail = executor.Result(
        IMAGES[0].__class__(id=IMAGES[0].id, repo_tags=tuple(f"r/t:{n}" for n in range(40))),
        Outcome.FAILED,
        "x" * 5000,
        error_kind="INTERNAL",
    )
    run = _run(REAL, dry_run=False)
    results = (long_detail, *run.report.results[1:])
    kinds = tuple(
        executor.Result(IMAGES[1], Outcome.FAILED, "d", error_kind=f"K{n}") for n in range(25)
    )
    bounded = report.document(
        dataclasses.replace(run, report=executor.Report(False, results + kinds))
    )
    first = bounded["results"][0]  # type: ignore[index]
    assert len(first["detail"]) == report.MAX_TEXT
    assert len(first["repoTags"]) == report.MAX_TAGS
    assert len(bounded["errors"]) == report.MAX_ERROR_KINDS  # type: ignore[arg-type]
    assert all(len(e["example"]) <= report.MAX_TEXT for e in bounded["errors"])  # type: ignore[attr-defined]


def _plan_with(*verdicts: planner.Verdict) -> service.PruneRun:
    run = _run(DRY, dry_run=True)
    plan = dataclasses.replace(run.observation.plan, verdicts=verdicts)
    return dataclasses.replace(run, observation=dataclasses.replace(run.observation, plan=plan))


def _image(n: int, size: int, *tags: str) -> types.Image:
    return types.Image(id=f"sha256:{n:064x}", repo_tags=tags, size=size)


def test_kept_lists_the_largest_kept_images_with_their_rule() -> None:
    run = _plan_with(
        planner.Verdict(_image(1, 10, "a:1"), planner.Reason.PINNED, "pinned by the runtime"),
        planner.Verdict(_image(2, 99, "b:1"), planner.Reason.REMOVABLE, ""),
        planner.Verdict(_image(3, 50), planner.Reason.IN_USE, "used by 1 container: web"),
        planner.Verdict(_image(4, 50, "c:1", "c:2"), planner.Reason.EXCLUDED, "matches c:*"),
    )
    doc = report.document(run)
    assert doc["kept"] == [
        {"id": _image(3, 0).id, "repoTags": [], "size": 50, "reason": "InUse",
         "detail": "used by 1 container: web"},
        {"id": _image(4, 0).id, "repoTags": ["c:1", "c:2"], "size": 50, "reason": "Excluded",
         "detail": "matches c:*"},
        {"id": _image(1, 0).id, "repoTags": ["a:1"], "size": 10, "reason": "Pinned",
         "detail": "pinned by the runtime"},
    ]  # fmt: skip
    assert doc["keptTruncated"] == 0
    bounded = report.document(run, max_kept=1)
    assert [k["reason"] for k in bounded["kept"]] == ["InUse"]  # type: ignore[attr-defined]
    assert bounded["keptTruncated"] == 2


def test_kept_entries_stay_short() -> None:
    tags = ("r/" + "x" * 600, *(f"r:{n}" for n in range(9)))
    long = planner.Verdict(_image(1, 1, *tags), planner.Reason.IN_USE, "y" * 600)
    [entry] = report.document(_plan_with(long))["kept"]  # type: ignore[misc]
    assert len(entry["repoTags"]) == report.MAX_KEPT_TAGS
    assert len(entry["repoTags"][0]) == len(entry["detail"]) == report.MAX_KEPT_TEXT


def _outside(schema: Mapping[str, Any], value: object, at: str = "report") -> list[str]:
    """Where `value` leaves `schema`: a field the apiserver would prune, or a list or
    string over its bound (which it would refuse)."""
    if isinstance(value, dict) and "properties" in schema:
        return [
            problem
            for key, item in value.items()
            for problem in (
                _outside(schema["properties"][key], item, f"{at}.{key}")
                if key in schema["properties"]
                else [f"{at}.{key}: not in the CRD"]
            )
        ]
    if isinstance(value, list):
        problems = [f"{at}: over maxItems"] if len(value) > schema.get("maxItems", 10**9) else []
        return problems + [p for v in value for p in _outside(schema["items"], v, f"{at}[]")]
    if isinstance(value, str) and len(value) > schema.get("maxLength", 10**9):
        return [f"{at}: over maxLength"]
    return []


def test_the_agents_document_is_what_the_task_crd_stores() -> None:
    """Every field the agent writes is in the CRD's status.report (the apiserver drops
    the others), within its bounds, with both lists full."""
    crd = Path(__file__).resolve().parents[2] / "charts/imageprune/crds/imageprunetasks.yaml"
    (version,) = yaml.safe_load(crd.read_text())["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["report"]
    tags = tuple(f"r/{'x' * 380}:{n}" for n in range(40))  # a reference is under 512
    kept = tuple(
        planner.Verdict(_image(n, n, *tags), planner.Reason.IN_USE, "y" * 600) for n in range(150)
    )
    run = _plan_with(*kept)
    many = tuple(
        executor.Result(_image(n, n, *tags), Outcome.FAILED, "z" * 5000) for n in range(80)
    )
    run = dataclasses.replace(run, report=executor.Report(False, many))
    doc = report.document(run, max_results=outcome.MAX_RESULTS, max_kept=outcome.MAX_KEPT)
    assert (len(doc["kept"]), len(doc["results"])) == (100, 50)  # type: ignore[arg-type]
    assert _outside(schema, json.loads(json.dumps(doc))) == []
