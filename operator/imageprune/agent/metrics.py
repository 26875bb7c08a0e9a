"""The agent's Prometheus metrics, in a registry of its own (several agents can share
a test process; the default registry is global)."""

from __future__ import annotations

import prometheus_client as prom

from imageprune.node import disk


class Metrics:
    def __init__(self) -> None:
        self.registry = prom.CollectorRegistry()
        # Process memory, CPU and file descriptors: the idle budget is watched here.
        prom.ProcessCollector(registry=self.registry)
        r = self.registry
        self.images_removed = prom.Counter(
            "imageprune_agent_images_removed", "Images removed (not counting dry runs)", registry=r
        )
        self.bytes_reclaimed = prom.Counter(
            "imageprune_agent_bytes_reclaimed",
            "Bytes of the removed images, at their runtime-reported sizes",
            registry=r,
        )
        self.runs = prom.Counter(
            "imageprune_agent_runs",
            "Runs by trigger and result reason",
            ["trigger", "result"],
            registry=r,
        )
        self.run_duration = prom.Histogram(
            "imageprune_agent_run_duration_seconds",
            "Wall time of a run, from observing the node to the last removal",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.errors = prom.Counter(
            "imageprune_agent_errors",
            "Errors by kind: runtime (CRI), apiserver, removal",
            ["kind"],
            registry=r,
        )
        self.fs_used = prom.Gauge(
            "imageprune_agent_image_filesystem_used_bytes", "Image filesystem used", registry=r
        )
        self.fs_capacity = prom.Gauge(
            "imageprune_agent_image_filesystem_capacity_bytes",
            "Image filesystem capacity",
            registry=r,
        )
        self.last_usage_record = prom.Gauge(
            "imageprune_agent_last_usage_record_timestamp_seconds",
            "Unix time of the last successful image usage record",
            registry=r,
        )
        self.runtime_up = prom.Gauge(
            "imageprune_agent_runtime_up", "1 when the CRI runtime answered last time", registry=r
        )

    def image_filesystem(self, usage: disk.DiskUsage) -> None:
        self.fs_used.set(usage.used_bytes)
        self.fs_capacity.set(usage.capacity_bytes)

    def serve(self, port: int, address: str = "") -> None:
        """Serve /metrics on a daemon thread (prometheus-client's own server)."""
        prom.start_http_server(port, addr=address or "0.0.0.0", registry=self.registry)  # noqa: S104
