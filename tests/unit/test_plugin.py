"""The kubectl plugin's pure parts: per-node results from task objects, totals, where a
run-now request stands, which report entry an image names, and the printed forms."""

from __future__ import annotations

import datetime
import importlib
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from imageprune.api import names
from imageprune.plugin import explain, follow, main, nodes, output, statusview

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
APP_ID = "sha256:" + "ab" * 32


def task(
    node: str,
    *,
    spec_run: str = "r1",
    run: str | None = "r1",
    finished: bool = True,
    ready: str = "True",
    reason: str = "Succeeded",
    degraded: tuple[str, str] = ("False", "AsExpected"),
    report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if run is not None:
        status = {
            "runId": run,
            "trigger": "Schedule",
            "startTime": "2026-12-01T11:00:00Z",
            "conditions": [
                {"type": "Ready", "status": ready, "reason": reason},
                {"type": "Degraded", "status": degraded[0], "reason": degraded[1]},
            ],
            "message": "no CRI runtime answers" if ready == "False" else "done",
        }
        if finished:
            status["completionTime"] = "2026-12-01T11:58:00Z"
            status["report"] = report if report is not None else _report()
    return {
        "metadata": {"name": f"p.{node}"},
        "spec": {"nodeName": node, "policyName": "p", "runId": spec_run, "mode": "Enforce"},
        "status": status,
    }


def _report(**fields: Any) -> dict[str, Any]:
    return {
        "dryRun": False,
        "removedImages": 2,
        "removedBytes": 3 * 1024**2,
        "verdicts": {"InUse": 4, "Excluded": 1, "Removable": 2},
        "results": [
            {
                "id": APP_ID,
                "repoTags": ["docker.io/library/nginx:1.25"],
                "size": 1024**2,
                "outcome": "Removed",
                "detail": "",
            },
            {
                "id": "sha256:" + "cd" * 32,
                "repoTags": ["registry.example/app:2"],
                "size": 2 * 1024**2,
                "outcome": "Failed",
                "detail": "FAILED_PRECONDITION: image is in use by a container",
            },
        ],
        "resultsTruncated": 0,
        "errors": [{"kind": "FAILED_PRECONDITION", "count": 1, "example": "..."}],
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({}, "Succeeded"),
        ({"finished": False}, nodes.RUNNING),
        ({"spec_run": "r2"}, nodes.PENDING),
        ({"run": None}, nodes.PENDING),
        ({"ready": "False", "reason": "RemovalsFailed"}, "RemovalsFailed"),
        # The operator's reading: Degraded's reason when it is True.
        (
            {"ready": "False", "reason": "Failed", "degraded": ("True", "RuntimeUnavailable")},
            "RuntimeUnavailable",
        ),
    ],
)
def test_a_node_state_is_read_as_the_operator_reads_it(fields: dict[str, Any], state: str) -> None:
    assert nodes.result(task("n1", **fields)).state == state


def test_node_results_and_totals_keep_dry_runs_apart() -> None:
    dry = task("b", report=_report(dryRun=True, removedImages=5, removedBytes=500))
    failed = task("c", ready="False", reason="RemovalsFailed")
    found = nodes.results([dry, task("a"), failed, task("d", run=None)])
    assert [r.node for r in found] == ["a", "b", "c", "d"]
    first = found[0]
    assert (first.removed_images, first.removed_bytes, first.errors) == (2, 3 * 1024**2, 1)
    assert first.finished == datetime.datetime(2026, 12, 1, 11, 58, tzinfo=datetime.UTC)
    assert nodes.totals(found) == nodes.Totals(
        nodes=4,
        removed_images=4,
        removed_bytes=6 * 1024**2,
        candidates=5,
        candidate_bytes=500,
        errors=3,
        failed_nodes=1,
    )


def test_hand_edited_garbage_in_a_task_is_not_a_crash() -> None:
    broken = {
        "metadata": {"name": "x"},
        "spec": {"nodeName": "n"},
        "status": {
            "runId": "r",
            "completionTime": "yesterday",
            "report": {"removedImages": "many", "errors": ["oops", {"count": True}]},
            "conditions": "none",
        },
    }
    found = nodes.result(broken)
    assert (found.finished, found.removed_images, found.errors) == (None, 0, 0)
    assert found.state == nodes.RUNNING  # no readable completion time


def policy(*, handled: str | None, run: dict[str, Any] | None) -> dict[str, Any]:
    annotations = {names.RUN_NOW_HANDLED_ANNOTATION: handled} if handled else {}
    return {
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {"mode": "Enforce"},
        "status": {"run": run} if run else {},
    }


def _run(run_id: str = "20261201-120000-runnow-1a2b3c4d", **fields: Any) -> dict[str, Any]:
    counts = {"matched": 3, "pending": 0, "running": 0, "succeeded": 3, "failed": 0, "skipped": 0}
    return {"id": run_id, "trigger": "RunNow", "nodes": counts | fields.pop("nodes", {}), **fields}


@pytest.mark.parametrize(
    ("handled", "run", "phase"),
    [
        (None, _run(), follow.Phase.WAITING),
        ("older", _run(), follow.Phase.WAITING),
        # Our value handled, but the run is the one before: ignored (suspended).
        ("ours", _run("before"), follow.Phase.IGNORED),
        ("ours", {**_run(), "trigger": "Schedule"}, follow.Phase.IGNORED),
        ("ours", None, follow.Phase.IGNORED),
        ("ours", _run(nodes={"running": 1, "succeeded": 2}), follow.Phase.RUNNING),
        ("ours", _run(completionTime="2026-12-01T12:01:00Z"), follow.Phase.SUCCEEDED),
        (
            "ours",
            _run(completionTime="2026-12-01T12:01:00Z", nodes={"failed": 1, "succeeded": 2}),
            follow.Phase.FAILED,
        ),
        ("ours", _run(paused=True, nodes={"running": 1}), follow.Phase.RUNNING),
        ("ours", _run(paused=True, pausedReason="2 failed"), follow.Phase.PAUSED),
    ],
)
def test_where_a_run_now_request_stands(
    handled: str | None, run: dict[str, Any] | None, phase: follow.Phase
) -> None:
    found = follow.progress(policy(handled=handled, run=run), request="ours", before="before")
    assert found.phase is phase
    assert found.phase.final is (phase not in (follow.Phase.WAITING, follow.Phase.RUNNING))


def test_an_invalid_spec_ends_the_wait() -> None:
    body = policy(handled=None, run=None)
    body["metadata"]["generation"] = 4
    invalid = {"type": "Ready", "reason": "InvalidSpec", "message": "spec.schedule: bad"}
    body["status"]["conditions"] = [invalid | {"observedGeneration": 4}]
    found = follow.progress(body, request="ours", before=None)
    assert found.phase is follow.Phase.INVALID
    assert found.phase.final
    assert found.line() == (
        "the operator starts no run: the policy's spec is invalid: spec.schedule: bad"
    )
    # About an older generation: the operator has not read the new spec yet.
    body["status"]["conditions"] = [invalid | {"observedGeneration": 3}]
    assert follow.progress(body, request="ours", before=None).phase is follow.Phase.WAITING


def test_progress_lines() -> None:
    progress = follow.Progress(follow.Phase.RUNNING, _run(nodes={"running": 1, "succeeded": 1}))
    assert progress.line() == (
        "run 20261201-120000-runnow-1a2b3c4d: 1 of 3 nodes done (1 succeeded, 0 failed), "
        "1 running, 0 pending"
    )
    started = follow.Progress(follow.Phase.RUNNING, {"id": "r9", "trigger": "RunNow"})
    assert started.line() == "run r9 started"
    assert "RunNowIgnored" in follow.Progress(follow.Phase.IGNORED, {}).line()


def test_each_node_is_announced_once_when_it_finishes_the_run() -> None:
    now = nodes.results([task("a"), task("b", finished=False), task("c", run="r0")])
    assert [r.node for r in follow.finished_nodes(set(), now, "r1")] == ["a"]
    assert follow.finished_nodes({"a"}, now, "r1") == []
    assert follow.node_line(now[0]) == "  a: Succeeded, removed 2 images (3 MiB), 1 error"


@pytest.mark.parametrize(
    ("image", "verdict"),
    [
        ("nginx:1.25", "Removed"),
        ("docker.io/library/nginx:1.25", "Removed"),
        (APP_ID, "Removed"),
        ("ab" * 6, "Removed"),  # 12 hex digits of the ID
        ("ab" * 5, "NotInReport"),  # too short a prefix to be sure
        ("registry.example/app:2", "Failed"),
        ("nginx:1.26", "NotInReport"),
        ("NOT A REFERENCE!", "NotInReport"),
    ],
)
def test_explain_finds_an_image_by_tag_or_id(image: str, verdict: str) -> None:
    assert explain.explain(task("a"), image).verdict == verdict


def test_explain_says_what_the_report_can_prove() -> None:
    failed = explain.explain(task("a"), "registry.example/app:2")
    assert failed.reason == (
        "not removed: the container runtime refused the removal "
        "(FAILED_PRECONDITION: image is in use by a container)"
    )
    kept = explain.explain(task("a"), "busybox")
    assert "kept by a rule" in kept.reason
    assert kept.kept == {"InUse": 4, "Excluded": 1, "Removable": 2}
    cut = explain.explain(task("a", report=_report(resultsTruncated=7)), "busybox")
    assert "7 more were candidates" in cut.reason
    assert "may have been removed" in cut.reason
    assert explain.explain(task("a", finished=False), "busybox").verdict == "NotRun"
    document = json.loads(json.dumps(failed.to_json()))
    assert document["runId"] == "r1"
    assert document["result"]["outcome"] == "Failed"


PAUSE_ID = "sha256:" + "ef" * 32
KEPT = [
    {
        "id": "sha256:" + "12" * 32,
        "repoTags": ["registry.example/db:5"],
        "size": 9 * 1024**2,
        "reason": "InUse",
        "detail": "used by 1 container: db (running)",
    },
    {
        "id": PAUSE_ID,
        "repoTags": ["registry.k8s.io/pause:3.10"],
        "size": 1024,
        "reason": "SandboxImage",
        "detail": "the runtime's pod sandbox image (registry.k8s.io/pause:3.10)",
    },
]


@pytest.mark.parametrize(
    ("image", "verdict", "reason"),
    [
        ("registry.example/db:5", "InUse", "kept: a container uses it (used by 1 container: db"),
        (PAUSE_ID[7:19], "SandboxImage", "kept: a pod sandbox image (the runtime's"),
        ("nginx:1.25", "Removed", "removed"),  # the results come first
    ],
)
def test_explain_names_the_rule_of_a_listed_kept_image(
    image: str, verdict: str, reason: str
) -> None:
    answer = explain.explain(task("a", report=_report(kept=KEPT, keptTruncated=0)), image)
    assert (answer.verdict, answer.reason[: len(reason)]) == (verdict, reason)


def test_explain_of_an_unlisted_image_says_what_the_lists_prove() -> None:
    cut = _report(kept=KEPT, keptTruncated=3)
    kept = explain.explain(task("a", report=cut), "busybox")
    assert (kept.verdict, kept.reason) == (
        "NotInReport",
        "kept by a rule (or not on the node): the report lists every image the run meant "
        "to remove, and it is not among the 2 largest kept images listed (3 more were kept)",
    )
    shown = explain.text(kept, policy="p", now=NOW)
    assert "  run's verdicts over all images: Excluded 1, InUse 4, Removable 2\n" in shown
    whole = explain.explain(task("a", report=_report(kept=KEPT, keptTruncated=0)), "busybox")
    assert whole.verdict == "NotOnNode"
    assert "`imageprune images`" not in explain.text(whole, policy="p", now=NOW)
    both_cut = _report(kept=KEPT, keptTruncated=3, resultsTruncated=7)
    assert "may have been removed" in explain.explain(task("a", report=both_cut), "x").reason


def test_explain_text_of_a_kept_image() -> None:
    answer = explain.explain(task("a", report=_report(kept=KEPT)), "registry.example/db:5")
    assert explain.text(answer, policy="p", now=NOW) == (
        "Image registry.example/db:5 on node a (policy p)\n"
        "  run:     r1 (Schedule, Enforce), 2m ago\n"
        "  verdict: InUse\n"
        "  why:     kept: a container uses it (used by 1 container: db (running))\n"
        f"  image:   {KEPT[0]['id']} (registry.example/db:5, 9 MiB)\n"
    )
    assert answer.to_json()["result"]["reason"] == "InUse"  # type: ignore[index]


def test_explain_text() -> None:
    removed = explain.text(explain.explain(task("a"), "nginx:1.25"), policy="p", now=NOW)
    assert removed == (
        "Image nginx:1.25 on node a (policy p)\n"
        "  run:     r1 (Schedule, Enforce), 2m ago\n"
        "  verdict: Removed\n"
        "  why:     removed\n"
        f"  image:   {APP_ID} (docker.io/library/nginx:1.25, 1 MiB)\n"
    )
    kept = explain.text(explain.explain(task("a"), "busybox"), policy="p", now=NOW)
    assert "  run's verdicts over all images: Excluded 1, InUse 4, Removable 2\n" in kept
    odd = _report(results=[{"id": APP_ID, "repoTags": ["nginx:1.25"], "size": "big"}])
    shown = explain.text(explain.explain(task("a", report=odd), APP_ID), policy="p", now=NOW)
    assert "(nginx:1.25, size unknown)" in shown


def test_status_text_and_document() -> None:
    body = policy(handled=None, run=_run(completionTime="2026-12-01T11:59:00Z"))
    found = nodes.results([task("node-a"), task("node-b", report=_report(dryRun=True))])
    text = statusview.text(body, found, NOW)
    print(text)
    assert text == (
        "Policy p (Enforce)\n"
        "Last run 20261201-120000-runnow-1a2b3c4d (RunNow), finished 1m ago: 3 succeeded, "
        "0 failed, 0 skipped of 3 nodes\n"
        "\n"
        "NODE             LAST RUN  TRIGGER   STATE      REMOVED      RECLAIMED  ERRORS\n"
        "node-a           2m ago    Schedule  Succeeded  2            3 MiB      1\n"
        "node-b           2m ago    Schedule  Succeeded  2 (dry run)  3 MiB      1\n"
        "TOTAL (2 nodes)                                 2            3 MiB      2\n"
        "Dry runs would remove 2 images (3 MiB); not counted in the total.\n"
    )
    for fmt, load in (("json", json.loads), ("yaml", yaml.safe_load)):
        document = load(output.dump(statusview.document(body, found), fmt))
        assert document["totals"]["candidates"] == 2
        assert document["nodes"][0]["completionTime"] == "2026-12-01T11:58:00Z"


def test_status_of_a_policy_that_never_ran() -> None:
    text = statusview.text(policy(handled=None, run=None), [], NOW)
    assert text == (
        "Policy p (Enforce)\nNo run yet\n\n"
        "No tasks: no node has been released to this policy yet.\n"
    )


def test_the_console_script_kubectl_finds_is_the_plugin() -> None:
    """kubectl runs `kubectl-imageprune` for `kubectl imageprune`: the name matters."""
    root = Path(__file__).resolve().parents[2]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["kubectl-imageprune"].partition(":")
    assert getattr(importlib.import_module(module), function) is main.main
