"""Prometheus metrics of the operator, per policy. Counters move when a run starts and by
what changed between two statuses the operator wrote, so a restart (which starts from the
stored status) does not count a run twice."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import prometheus_client

from imageprune.api.fields import integer, mapping

REGISTRY = prometheus_client.CollectorRegistry()

RUNS_STARTED = prometheus_client.Counter(
    "imageprune_runs_started",
    "Runs started, by policy and trigger.",
    ["policy", "trigger"],
    registry=REGISTRY,
)
RUNS_COMPLETED = prometheus_client.Counter(
    "imageprune_runs_completed", "Runs completed, by policy.", ["policy"], registry=REGISTRY
)
NODES_SUCCEEDED = prometheus_client.Counter(
    "imageprune_nodes_succeeded",
    "Nodes that completed a run successfully.",
    ["policy"],
    registry=REGISTRY,
)
NODES_FAILED = prometheus_client.Counter(
    "imageprune_nodes_failed", "Nodes that failed a run.", ["policy"], registry=REGISTRY
)
IMAGES_REMOVED = prometheus_client.Counter(
    "imageprune_images_removed",
    "Images removed by Enforce runs (disk-pressure runs included, by trigger).",
    ["policy", "trigger"],
    registry=REGISTRY,
)
BYTES_RECLAIMED = prometheus_client.Counter(
    "imageprune_bytes_reclaimed",
    "Bytes reclaimed by Enforce runs (disk-pressure runs included, by trigger).",
    ["policy", "trigger"],
    registry=REGISTRY,
)
NODES = prometheus_client.Gauge(
    "imageprune_policy_nodes",
    "Matched nodes of the current run, by state.",
    ["policy", "state"],
    registry=REGISTRY,
)
_STATES = ("matched", "pending", "running", "succeeded", "failed", "skipped")


def observe(policy: str, old: Mapping[str, object], new: Mapping[str, object]) -> None:
    """Move the metrics by the change from status `old` to status `new`."""
    old_run, new_run = mapping(old.get("run")), mapping(new.get("run"))
    if not new_run:
        return
    base = old_run if old_run.get("id") == new_run.get("id") else {}
    trigger = str(new_run.get("trigger", ""))
    if "completionTime" in new_run and "completionTime" not in base:
        RUNS_COMPLETED.labels(policy).inc()
    old_nodes, new_nodes = mapping(base.get("nodes")), mapping(new_run.get("nodes"))
    NODES_SUCCEEDED.labels(policy).inc(_grown(old_nodes, new_nodes, "succeeded"))
    NODES_FAILED.labels(policy).inc(_grown(old_nodes, new_nodes, "failed"))
    IMAGES_REMOVED.labels(policy, trigger).inc(_grown(base, new_run, "imagesRemoved"))
    BYTES_RECLAIMED.labels(policy, trigger).inc(_grown(base, new_run, "bytesReclaimed"))
    for state in _STATES:
        NODES.labels(policy, state).set(integer(new_nodes.get(state)))


def run_started(policy: str, trigger: str) -> None:
    RUNS_STARTED.labels(policy, trigger).inc()


def disk_pressure_run(policy: str, *, images: int, reclaimed: int) -> None:
    IMAGES_REMOVED.labels(policy, "DiskPressure").inc(images)
    BYTES_RECLAIMED.labels(policy, "DiskPressure").inc(reclaimed)


def forget(policy: str) -> None:
    """A deleted policy's gauges go (counters stay until restart, as Prometheus expects)."""
    for state in _STATES:
        with contextlib.suppress(KeyError):
            NODES.remove(policy, state)


def serve(port: int) -> None:
    prometheus_client.start_http_server(port, registry=REGISTRY)


def _grown(old: Mapping[str, object], new: Mapping[str, object], key: str) -> int:
    return max(0, integer(new.get(key)) - integer(old.get(key)))
