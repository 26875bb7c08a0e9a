"""Writing a task's /status: read the task, build the new status from its current one,
and merge-patch it under the read's resourceVersion, so that a status is never computed
from a stale copy (a conflict reads again)."""

from __future__ import annotations

import asyncio
import enum
import logging
import time

from imageprune.agent import status
from imageprune.agent.metrics import Metrics
from imageprune.kube.backoff import Backoff
from imageprune.kube.client import Client
from imageprune.kube.errors import ApiError, KubeError
from imageprune.kube.resources import Task

log = logging.getLogger("imageprune.agent")


class Written(enum.Enum):
    OK = "ok"
    GONE = "gone"  # the task was deleted
    REFUSED = "refused"  # the apiserver rejected the status (e.g. invalid)
    GAVE_UP = "gave up"  # not retried, or the apiserver stayed away past shutdown


class StatusWriter:
    def __init__(self, kube: Client, *, metrics: Metrics, final_write_timeout: float) -> None:
        self.kube = kube
        self.metrics = metrics
        self.final_write_timeout = final_write_timeout
        self._stopped_at: float | None = None

    def shutdown_started(self) -> None:
        """From now on, writes are retried only for final_write_timeout."""
        self._stopped_at = time.monotonic()

    async def write(self, name: str, build: status.Builder, *, retry: bool = True) -> Written:
        """Retried with backoff while the apiserver is away, each retry logged; after
        shutdown_started only for final_write_timeout; without `retry`, tried once."""
        backoff = Backoff()
        while True:
            try:
                obj = await self.kube.get(Task, name)
                body = build(obj.get("status") or {})
                if body is None:
                    return Written.OK
                version = obj.get("metadata", {}).get("resourceVersion")
                await self.kube.merge_patch(
                    Task.Status, name, {"metadata": {"resourceVersion": version}, "status": body}
                )
                return Written.OK
            except ApiError as err:
                if err.status == 404:
                    log.info("task %s is gone; its status is not written", name)
                    return Written.GONE
                if err.status == 409:
                    continue  # changed since read: read again
                if not err.retryable:
                    log.error("task %s: the apiserver refused the status: %s", name, err)
                    self.metrics.errors.labels("apiserver").inc()
                    return Written.REFUSED
                problem: KubeError = err
            except KubeError as err:
                problem = err
            self.metrics.errors.labels("apiserver").inc()
            if not retry:
                log.warning("task %s: cannot write status: %s", name, problem)
                return Written.GAVE_UP
            if self._stopped_at is not None and (
                time.monotonic() - self._stopped_at > self.final_write_timeout
            ):
                log.error("task %s: giving up writing its status at shutdown: %s", name, problem)
                return Written.GAVE_UP
            delay = backoff.next_delay()
            log.warning(
                "task %s: cannot write status (attempt %d): %s; retrying in %.1fs",
                name,
                backoff.attempts,
                problem,
                delay,
            )
            await asyncio.sleep(delay)
