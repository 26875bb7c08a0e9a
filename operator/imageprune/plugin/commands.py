"""The three commands, each given a connected client: read or write through connect,
decide with the pure modules, print with output. Each returns the exit code."""

from __future__ import annotations

import asyncio
import datetime
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from imageprune.api import names, task
from imageprune.kube import resources, watch
from imageprune.kube.client import Client
from imageprune.plugin import connect, explain, follow, nodes, output, statusview

OK, FAILED = 0, 1


async def status(client: Client, name: str, *, fmt: str, out: output.Stream) -> int:
    policy = await connect.policy(client, name)
    found = nodes.results(await connect.tasks(client, name))
    if fmt == "table":
        out.write(statusview.text(policy, found, _now()))
    else:
        out.write(output.dump(statusview.document(policy, found), fmt))
    return OK


async def explain_image(
    client: Client, name: str, node: str, image: str, *, fmt: str, out: output.Stream
) -> int:
    await connect.policy(client, name)
    chosen = await connect.node_task(client, name, node)
    if chosen is None:
        tasks = await connect.tasks(client, name)  # only to name the nodes it has
        known = ", ".join(sorted(t["spec"].get("nodeName", "?") for t in tasks)) or "none"
        raise connect.Failure(f"policy {name} has no task on node {node!r} (nodes: {known})")
    answer = explain.explain(chosen, image)
    if fmt == "table":
        out.write(explain.text(answer, policy=name, now=_now()))
    else:
        out.write(output.dump(answer.to_json(), fmt))
    return OK


async def run(
    client: Client,
    name: str,
    *,
    fmt: str,
    give_up_after: float,
    out: output.Stream,
    err: output.Stream,
) -> int:
    """Ask for a run with a new run-now value, then follow the policy and its tasks
    until the run is over. Progress goes to `out` for a table, to `err` otherwise (so
    -o json|yaml prints one document)."""
    policy = await connect.policy(client, name)
    before = ((policy.get("status") or {}).get("run") or {}).get("id")
    request = f"{_now().isoformat(timespec='seconds')}-{secrets.token_hex(4)}"
    await connect.annotate(client, name, {names.RUN_NOW_ANNOTATION: request})
    log = out if fmt == "table" else err
    log.write(f"asked for a run of {name} (run-now {request})\n")
    log.flush()
    try:
        async with asyncio.timeout(give_up_after):
            state, tasks = await _follow(client, name, request=request, before=before, log=log)
    except TimeoutError:
        raise connect.Failure(
            f"gave up following after {give_up_after:g}s; the run goes on "
            f"(kubectl imageprune status {name}). Is the operator running?"
        ) from None
    found = nodes.results(tasks.values())
    phase = follow.progress(state, request=request, before=before).phase
    if fmt == "table":
        out.write("\n" + statusview.text(state, found, _now()))
    else:
        document = {"phase": phase.value, "runNow": request, **statusview.document(state, found)}
        out.write(output.dump(document, fmt))
    return OK if phase is follow.Phase.SUCCEEDED else FAILED


async def _follow(
    client: Client, name: str, *, request: str, before: str | None, log: output.Stream
) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]]]:
    """Watch the policy and its tasks until the run is over; print each new progress
    line and each node as it finishes. Returns the last policy and tasks seen."""
    queue: asyncio.Queue[tuple[str, watch.Listed | watch.Changed]] = asyncio.Queue()
    watchers = {
        "policy": watch.Watcher(client, resources.Policy, field_selector=f"metadata.name={name}"),
        "tasks": watch.Watcher(
            client,
            resources.Task,
            labels={names.POLICY_LABEL: task.label_value(name)},
            keep=task.essentials,
        ),
    }

    async def pump(kind: str, watcher: watch.Watcher) -> None:
        async for event in watcher.events():
            await queue.put((kind, event))

    pumps = [asyncio.create_task(pump(kind, w)) for kind, w in watchers.items()]
    try:
        policy: dict[str, Any] = {}
        tasks: dict[str, Mapping[str, Any]] = {}
        announced: set[str] = set()
        last_line = ""
        while True:
            kind, event = await queue.get()
            _apply(policy if kind == "policy" else tasks, kind, event)
            if not policy:
                continue
            progress = follow.progress(policy, request=request, before=before)
            mine: Sequence[Mapping[str, Any]] = [
                t for t in tasks.values() if (t.get("spec") or {}).get("policyName") == name
            ]
            if progress.phase.final:
                # The tasks' watch may lag behind the policy's: read them as they are now.
                mine = await connect.tasks(client, name)
            lines = []
            if progress.run:
                current = nodes.results(mine)
                finished = follow.finished_nodes(announced, current, str(progress.run["id"]))
                announced.update(r.node for r in finished)
                lines = [follow.node_line(r) for r in finished]
            if progress.line() != last_line:
                last_line = progress.line()
                lines.append(last_line)
            log.write("".join(line + "\n" for line in lines))
            log.flush()
            if progress.phase.final:
                return policy, {t["metadata"]["name"]: t for t in mine}
    finally:
        for pump_task in pumps:
            pump_task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


def _apply(state: dict[str, Any], kind: str, event: watch.Listed | watch.Changed) -> None:
    if kind == "policy":
        gone = not event.items if isinstance(event, watch.Listed) else event.type == "DELETED"
        if gone:
            raise connect.Failure("the policy was deleted while following its run")
        state.clear()
        state.update(event.items[0] if isinstance(event, watch.Listed) else event.object)
        return
    if isinstance(event, watch.Listed):
        state.clear()
        state.update({t["metadata"]["name"]: t for t in event.items})
    elif event.type == "DELETED":
        state.pop(event.object["metadata"]["name"], None)
    else:
        state[event.object["metadata"]["name"]] = event.object


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
