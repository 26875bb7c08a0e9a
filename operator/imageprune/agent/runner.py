"""The agent's work: four loops on one event loop.

- watch: list and watch this node's tasks (fieldSelector spec.nodeName=<node>);
- work: run each task whose spec.runId this node has not completed yet;
- usage: record which images containers use, every --usage-interval, and keep the
  tasks' Degraded condition in step with whether the runtime answers;
- disk: every --disk-check-interval, run the tasks whose diskUsage.highPercent the
  image filesystem has reached (again only once usage grows past where the last such
  run left it).

Runs, usage records and runtime conditions take one lock: never two prunes at once,
and no condition write lands between a run's two status writes."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from imageprune.agent import outcome, status, writer
from imageprune.agent.ledger import Ledger
from imageprune.agent.metrics import Metrics
from imageprune.agent.status import Reason
from imageprune.api import task as api_task
from imageprune.api.policy import Mode, Trigger
from imageprune.kube import resources
from imageprune.kube.backoff import Backoff
from imageprune.kube.client import Client
from imageprune.kube.watch import Listed, Watcher
from imageprune.node import disk, executor, service, statelock, usage
from imageprune.node import report as node_report
from imageprune.policy import quantities
from imageprune.policy.selection import Selection, selection_from_spec
from imageprune_cri import CriClient, CriError

log = logging.getLogger("imageprune.agent")

Object = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Settings:
    node_name: str
    state_dir: Path
    usage_interval: float = 60.0
    disk_check_interval: float = 60.0
    runtime_timeout: float = 30.0  # the CRI client's deadline per call
    concurrency: int | None = None  # removals in flight; None: executor.default_width
    # After SIGTERM, how long the current run may go on before it is abandoned.
    shutdown_grace: float = 20.0
    # How long status writes are retried after SIGTERM before giving up.
    final_write_timeout: float = 10.0


class Interrupted(Exception):
    """The run was abandoned at shutdown; the message says what had been removed."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _generation(obj: Object) -> int:
    return int(obj.get("metadata", {}).get("generation") or 0)


class Agent:
    def __init__(
        self, settings: Settings, *, kube: Client, cri: CriClient, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.cri = cri
        self.metrics = metrics
        self.store = usage.UsageStore(settings.state_dir / "usage.json")
        self.ledger = Ledger(settings.state_dir / "agent-runs.json")
        self.watcher = Watcher(
            kube, resources.Task, field_selector=f"spec.nodeName={settings.node_name}"
        )
        self.writer = writer.StatusWriter(
            kube, metrics=metrics, final_write_timeout=settings.final_write_timeout
        )
        self.tasks: dict[str, Object] = {}
        self.runtime_up: bool | None = None  # None until the first answer or failure
        self.runtime_error = ""
        self.last_runtime_contact: float | None = None
        self._engine = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._busy: set[str] = set()  # the loops in a run right now
        # Per task, the image filesystem's used bytes after its last disk-pressure run.
        # Still over highPercent then, it runs again only once usage grows past that:
        # not every check (each run is a status write and an Event on the policy).
        self._disk_left_at: dict[str, int] = {}
        self._started = time.monotonic()

    # ---- lifecycle ----------------------------------------------------------------

    def stop(self, why: str) -> None:
        if not self._stopping.is_set():
            log.info("%s: stopping", why)
            self.writer.shutdown_started()
            self._stopping.set()
            self._wake.set()

    async def run(self) -> None:
        """Until stop(); a loop that dies of a bug stops the agent (and is raised)."""
        loops = {"watch": self._watch, "work": self._work, "usage": self._usage, "disk": self._disk}
        self._loops = {name: asyncio.create_task(loop(), name=name) for name, loop in loops.items()}
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([*self._loops.values(), stopping], return_when=asyncio.FIRST_COMPLETED)
        self.stop("a loop ended")
        # A loop in a run finishes it (or abandons it, writing Interrupted) by itself;
        # the others just end.
        for name, loop in self._loops.items():
            if name not in self._busy:
                loop.cancel()
        results = await asyncio.gather(*self._loops.values(), return_exceptions=True)
        for name, result in zip(self._loops, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise RuntimeError(f"the {name} loop failed") from result
        stopping.cancel()

    def health(self) -> tuple[bool, dict[str, object]]:
        """Alive when the watch loop runs and the runtime answered recently (or the
        agent has only just started)."""
        watching = "watch" in self._loops and not self._loops["watch"].done()
        # Three usage records missed, each allowed its full deadline.
        window = 3 * (self.settings.usage_interval + self.settings.runtime_timeout)
        now = time.monotonic()
        contact = self.last_runtime_contact
        # No answer yet: the agent counts as just started.
        runtime_recent = now - (self._started if contact is None else contact) < window
        last_api = self.watcher.last_contact
        return watching and runtime_recent, {
            "watching": watching,
            "runtimeUp": self.runtime_up,
            "runtimeContactSecondsAgo": None if contact is None else round(now - contact, 1),
            "apiserverContactSecondsAgo": None if last_api is None else round(now - last_api, 1),
        }

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless stopping; False when the agent is stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    # ---- watch ------------------------------------------------------------------

    async def _watch(self) -> None:
        async for event in self.watcher.events():
            if isinstance(event, Listed):
                self.tasks = {
                    obj["metadata"]["name"]: obj for obj in event.items if self._mine(obj)
                }
                self.ledger.keep_only(self.tasks)
            elif self._mine(event.object):
                name = event.object["metadata"]["name"]
                if event.type == "DELETED":
                    self.tasks.pop(name, None)
                else:
                    self.tasks[name] = event.object
            self._wake.set()

    def _mine(self, obj: Object) -> bool:
        node = (obj.get("spec") or {}).get("nodeName")
        if node != self.settings.node_name:  # the field selector should make this impossible
            log.warning("ignoring task %s of node %r", obj.get("metadata", {}).get("name"), node)
            return False
        return True

    # ---- runs the operator asks for ----------------------------------------------

    async def _work(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            for name in sorted(self.tasks):
                if self._stopping.is_set():
                    return
                obj = self.tasks.get(name)
                run_id = status.wanted_run(obj, done=self.ledger.done(name)) if obj else None
                if obj is not None and run_id is not None:
                    await self._exclusively(
                        "work", functools.partial(self._requested_run, name, obj, run_id)
                    )

    async def _exclusively(self, loop: str, run: Callable[[], Awaitable[object]]) -> None:
        """Run under the engine lock, unless the agent started stopping meanwhile."""
        async with self._engine:
            if self._stopping.is_set():
                return
            self._busy.add(loop)
            try:
                await run()
            finally:
                self._busy.discard(loop)

    async def _requested_run(self, name: str, obj: Object, run_id: str) -> None:
        generation = _generation(obj)
        try:
            spec = api_task.spec_from_dict(obj.get("spec") or {})
            selection = selection_from_spec(spec.selection)
        except ValueError as err:  # PolicyError, or a DiskTarget out of range
            problem = str(err)
            log.error(
                "task %s run %s: invalid selection: %s; nothing removed", name, run_id, problem
            )
            now = _now()
            trigger = str((obj.get("spec") or {}).get("trigger") or Trigger.CREATE.value)
            self.metrics.runs.labels(trigger, Reason.INVALID_SELECTION.value).inc()
            written = await self.writer.write(
                name,
                lambda current: status.finished(
                    current,
                    run_id=run_id,
                    trigger=trigger,
                    reason=Reason.INVALID_SELECTION,
                    message=f"invalid selection, nothing removed: {problem}",
                    report=None,
                    generation=generation,
                    started_at=now,
                    now=now,
                ),
            )
            if written is writer.Written.OK:
                self.ledger.record(name, run_id)
            return
        completed = await self._execute(
            name,
            run_id=run_id,
            trigger=spec.trigger.value,
            selection=selection,
            dry_run=spec.mode is Mode.DRY_RUN,
            generation=generation,
            released=True,
        )
        if completed:
            self.ledger.record(name, run_id)

    # ---- one run ------------------------------------------------------------------

    async def _execute(
        self,
        name: str,
        *,
        run_id: str,
        trigger: str,
        selection: Selection,
        dry_run: bool,
        generation: int,
        released: bool = False,
    ) -> bool:
        """Run the node engine for one task and report it in the task's status.
        Call with the engine lock held. False when the task vanished or the status
        could not be written, or when a `released` run (the operator's, not a disk
        check's) was cut short by shutdown: the run then counts as not done, and the
        next agent runs it again."""
        started_at = _now()
        log.info(
            "task %s: run %s (%s, %s) starting",
            name,
            run_id,
            trigger,
            "dry run" if dry_run else "enforce",
        )
        written = await self.writer.write(
            name,
            lambda current: status.started(
                current, run_id=run_id, trigger=trigger, generation=generation, now=started_at
            ),
        )
        if written is not writer.Written.OK:
            return False
        clock = time.monotonic()
        results: list[executor.Result] = []
        report: dict[str, object] | None = None
        try:
            run = await self._until_stopped(
                service.prune(
                    self.cri,
                    selection=selection,
                    store=self.store,
                    now=started_at,
                    dry_run=dry_run,
                    concurrency=self.settings.concurrency,
                    lock=statelock.StateLock(self.settings.state_dir),
                    on_result=results.append,
                    # Set at SIGTERM: no further removal is sent, those in flight finish.
                    stop=self._stopping,
                ),
                results,
            )
        except statelock.LockError as err:
            reason, message = Reason.NODE_BUSY, f"nothing removed: {err}"
        except CriError as err:
            # Observing failed: without a confirmed container listing nothing was removed.
            self._runtime_failed(err)
            reason, message = Reason.RUNTIME_UNAVAILABLE, f"nothing removed: {err}"
        except Interrupted as err:
            reason, message = Reason.INTERRUPTED, str(err)
        except Exception as err:  # a bug: report it on the task rather than leave it running
            log.exception("task %s run %s failed", name, run_id)
            self.metrics.errors.labels("internal").inc()
            reason, message = Reason.INTERNAL_ERROR, f"internal error: {err!r}"
        else:
            self._runtime_answered()
            report = node_report.document(
                run, max_results=outcome.MAX_RESULTS, max_kept=outcome.MAX_KEPT
            )
            reason, message = outcome.judge(
                run.report, images_seen=len(run.observation.plan.verdicts)
            )
            taken = outcome.removed(run.report)
            self.metrics.images_removed.inc(len(taken))
            self.metrics.bytes_reclaimed.inc(sum(r.image.size for r in taken))
            self.metrics.errors.labels("removal").inc(len(run.report.failed))
        elapsed = time.monotonic() - clock
        self.metrics.run_duration.observe(elapsed)
        self.metrics.runs.labels(trigger, reason.value).inc()
        log.log(
            logging.INFO if reason is Reason.SUCCEEDED else logging.WARNING,
            "task %s: run %s %s in %.1fs: %s",
            name,
            run_id,
            reason.value,
            elapsed,
            message,
        )
        completed_at = _now()
        if released and reason is Reason.INTERRUPTED:
            again = f"{message}; the agent's next start runs {run_id} again"
            await self.writer.write(
                name,
                lambda current: status.left_unfinished(
                    current, run_id=run_id, message=again, generation=generation, now=completed_at
                ),
            )
            return False

        def finished(report: Mapping[str, object] | None, message: str) -> status.Builder:
            return lambda current: status.finished(
                current,
                run_id=run_id,
                trigger=trigger,
                reason=reason,
                message=message,
                report=report,
                generation=generation,
                started_at=started_at,
                now=completed_at,
            )

        written = await self.writer.write(name, finished(report, message))
        if written is writer.Written.REFUSED and report is not None:
            # Never leave the run looking unfinished (the operator would wait on it):
            # the conditions and message still tell the truth without the report.
            written = await self.writer.write(
                name, finished(None, f"{message} (the report was refused by the apiserver)")
            )
        return written is writer.Written.OK

    async def _until_stopped(
        self, prune: Coroutine[Any, Any, service.PruneRun], results: list[executor.Result]
    ) -> service.PruneRun:
        """The run's result; at shutdown it gets shutdown_grace to finish, then it is
        abandoned (Interrupted, saying what it had removed)."""
        running = asyncio.create_task(prune)
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                grace = self.settings.shutdown_grace
                log.info("letting the current run finish (up to %gs)", grace)
                await asyncio.wait([running], timeout=grace)
            if not running.done():
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                taken = [r for r in results if r.outcome is executor.Outcome.REMOVED]
                size = quantities.format_bytes(sum(r.image.size for r in taken))
                raise Interrupted(
                    f"interrupted by shutdown: {len(taken)} images ({size}) removed before it; "
                    "the removals in flight at that moment may or may not have completed"
                )
            return running.result()
        finally:
            stopping.cancel()

    # ---- usage records and the runtime's condition ------------------------------------

    async def _usage(self) -> None:
        interval = self.settings.usage_interval
        backoff = Backoff(initial=min(1.0, interval), maximum=interval)
        delay = 0.0
        while await self._pause(delay):
            async with self._engine:
                try:
                    await service.record_usage(self.cri, store=self.store, now=_now())
                except CriError as err:
                    self._runtime_failed(err)
                    delay = backoff.next_delay()
                    log.warning(
                        "cannot record image usage (attempt %d): %s; retrying in %.1fs",
                        backoff.attempts,
                        err,
                        delay,
                    )
                else:
                    self._runtime_answered()
                    self.metrics.last_usage_record.set(time.time())
                    backoff.reset()
                    delay = interval
                await self._sync_runtime_conditions()

    def _runtime_answered(self) -> None:
        if self.runtime_up is False:
            log.info("the container runtime answers again")
        self.runtime_up, self.runtime_error = True, ""
        self.last_runtime_contact = time.monotonic()
        self.metrics.runtime_up.set(1)

    def _runtime_failed(self, err: CriError) -> None:
        self.runtime_up, self.runtime_error = False, str(err)
        self.metrics.runtime_up.set(0)
        self.metrics.errors.labels("runtime").inc()

    async def _sync_runtime_conditions(self) -> None:
        """Degraded RuntimeUnavailable on every task while the runtime is down, cleared
        once it answers. Call with the engine lock held."""
        if self.runtime_up is None:
            return
        up = self.runtime_up
        message = (
            "the container runtime answers"
            if up
            else "the container runtime does not answer, so no run can remove anything: "
            + self.runtime_error
        )
        for name, obj in list(self.tasks.items()):
            build = functools.partial(
                status.runtime_condition,
                available=up,
                message=message,
                generation=_generation(obj),
                now=_now(),
            )
            if build(obj.get("status") or {}) is None:
                continue  # as the cache last saw it; the writer re-checks the fresh one
            # Best effort: the next usage tick looks again, so it must not wait here
            # (holding the engine lock) for an apiserver that is away.
            await self.writer.write(name, build, retry=False)

    # ---- disk pressure ------------------------------------------------------------

    async def _disk(self) -> None:
        while await self._pause(self.settings.disk_check_interval):
            fs = await self._image_filesystem()
            for name in sorted(self.tasks):
                obj = self.tasks.get(name)
                if fs is None or self._stopping.is_set():
                    break
                due = self._disk_selection(obj, fs) if obj is not None else None
                if obj is None or due is None:
                    self._disk_left_at.pop(name, None)  # below highPercent: start afresh
                    continue
                if fs.used_bytes <= self._disk_left_at.get(name, -1):
                    continue  # still where the last disk run left it: that run did its best
                selection, mode = due
                # After finishing the operator's run, report under its id: a disk run of
                # its own id would make the operator read this node as pending for that
                # run, which it already did, and the rollout would never complete.
                run_id = self.ledger.done(name)
                if not run_id or run_id != (obj.get("spec") or {}).get("runId"):
                    run_id = "disk-" + _now().strftime("%Y%m%dT%H%M%SZ")
                log.info(
                    "task %s: image filesystem %.1f%% full, at or above highPercent %g: run %s",
                    name,
                    100 * fs.used_bytes / fs.capacity_bytes,
                    selection.disk.high_percent if selection.disk else 0,
                    run_id,
                )
                await self._exclusively(
                    "disk",
                    functools.partial(
                        self._execute,
                        name,
                        run_id=run_id,
                        trigger=Trigger.DISK_PRESSURE.value,
                        selection=selection,
                        dry_run=mode is not Mode.ENFORCE,
                        generation=_generation(obj),
                    ),
                )
                fs = await self._image_filesystem()  # the run may have freed space
                if fs is not None:
                    self._disk_left_at[name] = fs.used_bytes

    async def _image_filesystem(self) -> disk.DiskUsage | None:
        try:
            fs = disk.of_image_filesystems(await self.cri.image_fs_info())
        except CriError as err:
            log.warning("disk check skipped: %s", err)  # the usage loop reports the runtime
            return None
        if fs is not None and fs.capacity_bytes > 0:
            self.metrics.image_filesystem(fs)
            return fs
        return None

    @staticmethod
    def _disk_selection(obj: Object, fs: disk.DiskUsage) -> tuple[Selection, Mode] | None:
        spec = obj.get("spec") or {}
        chosen = spec.get("selection")
        if not isinstance(chosen, Mapping) or not chosen.get("diskUsage"):
            return None
        try:
            selection = selection_from_spec(chosen)
            mode = Mode(str(spec.get("mode")))
        except ValueError:
            return None  # the operator's own run reports it as InvalidSelection
        if selection.disk is None:
            return None
        if 100 * fs.used_bytes / fs.capacity_bytes < selection.disk.high_percent:
            return None
        return selection, mode
