"""One pass over a policy, with a recording fake of the operator's few API calls: the
run is persisted before any task is written, and a second pass from what was written
starts nothing new."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from imageprune.api import names
from imageprune.cluster import aggregate, reconcile

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 29, 3, tzinfo=datetime.UTC)


class RecordingClient:
    """The calls reconcile makes (kubeapi.Client's methods), in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def patch_policy_status(self, name: str, patch: Mapping[str, object]) -> None:
        self.calls.append(("status", dict(patch)))

    async def annotate_policy(self, name: str, annotations: Mapping[str, str]) -> None:
        self.calls.append(("annotate", dict(annotations)))

    async def create_task(self, manifest: Mapping[str, Any]) -> bool:
        self.calls.append(("create", manifest["metadata"]["name"]))
        return True

    async def patch_task_spec(self, name: str, spec: Mapping[str, object]) -> None:
        self.calls.append(("release", name))

    async def delete_task(self, name: str) -> None:
        self.calls.append(("delete", name))


def policy(**annotations: str) -> reconcile.Policy:
    return reconcile.Policy(
        name="p",
        uid="uid-1",
        generation=1,
        created=NOW,
        spec={"rollout": {"maxConcurrentNodes": 1}},
        status={},
        annotations=annotations,
    )


async def one_pass(
    client: RecordingClient, memory: reconcile.PolicyMemory, target: reconcile.Policy
) -> list[aggregate.Event]:
    announced: list[aggregate.Event] = []

    async def announce(event: aggregate.Event) -> None:
        announced.append(event)

    await reconcile.reconcile(
        target,
        nodes={"a": {}, "b": {}},
        tasks=[],
        unable={},
        memory=memory,
        client=client,  # type: ignore[arg-type]
        announce=announce,
        logger=logging.getLogger("test"),
        now=NOW,
    )
    return announced


async def test_the_run_is_persisted_before_any_task_is_written() -> None:
    client, memory = RecordingClient(), reconcile.PolicyMemory()
    announced = await one_pass(client, memory, policy())
    kinds = [kind for kind, _ in client.calls]
    assert kinds == ["status", "create", "status"]
    first_status = client.calls[0][1]
    assert first_status["run"]["id"] == "20261129-030000-create-g1"
    assert client.calls[1][1] == "p.a"  # one node per wave
    assert [e.reason for e in announced] == ["RunStarted"]


async def test_the_next_pass_releases_nothing_twice_and_starts_no_run() -> None:
    client, memory = RecordingClient(), reconcile.PolicyMemory()
    await one_pass(client, memory, policy())
    client.calls.clear()
    # The index has not caught up: no task is visible yet. The memory of what was
    # released and written keeps the wave and the run as they are.
    announced = await one_pass(client, memory, policy())
    assert client.calls == []
    assert announced == []


async def test_run_now_is_recorded_after_the_run_it_started() -> None:
    client, memory = RecordingClient(), reconcile.PolicyMemory()
    target = policy(**{"imageprune.io/run-now": "go"})
    await one_pass(client, memory, target)
    kinds = [kind for kind, _ in client.calls]
    assert kinds[:2] == ["status", "annotate"]
    assert client.calls[1][1] == {names.RUN_NOW_HANDLED_ANNOTATION: "go"}
    assert client.calls[0][1]["run"]["trigger"] == "RunNow"


async def test_an_invalid_spec_writes_only_the_status_and_says_why() -> None:
    client, memory = RecordingClient(), reconcile.PolicyMemory()
    bad = reconcile.Policy(
        name="p",
        uid="u",
        generation=2,
        created=NOW,
        spec={"schedule": "every day"},
        status={},
        annotations={},
    )
    announced = await one_pass(client, memory, bad)
    assert [kind for kind, _ in client.calls] == ["status"]
    assert [e.reason for e in announced] == ["InvalidSpec"]
    assert "spec.schedule" in announced[0].message
