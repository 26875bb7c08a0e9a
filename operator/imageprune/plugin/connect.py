"""The plugin's way into the cluster: imageprune.kube's client (kubeconfig read as
kubectl reads it, exec credential plugins included) and the reads and writes the
commands make, with every failure turned into one line a user can act on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

from imageprune.api import names, task
from imageprune.kube import config, resources, watch
from imageprune.kube.client import Client
from imageprune.kube.errors import ApiError, ConfigError, Unreachable

T = TypeVar("T")


class Failure(Exception):
    """What went wrong, in one line, for the user."""


@contextlib.asynccontextmanager
async def connected(
    kubeconfig: str | None, context: str | None, *, request_timeout: float
) -> AsyncIterator[Client]:
    try:
        # kubectl's order: a kubeconfig wherever one is found, only then (in a pod)
        # the service account.
        target = config.load(kubeconfig, context=context, in_cluster_first=False)
        client = Client(target, timeout=request_timeout)
    except ConfigError as err:
        raise Failure(f"cannot use the kubeconfig: {err}") from None
    try:
        await call("log in", client.check())
        yield client
    finally:
        await client.close()


async def call(what: str, awaitable: Awaitable[T]) -> T:
    """Await one API call; its failure becomes a Failure saying what to fix."""
    try:
        return await awaitable
    except ApiError as err:
        if err.status == 403:
            raise Failure(f"no permission: {err.detail or err}") from None
        if err.status == 401:
            raise Failure(
                f"the apiserver rejected our credentials ({what}): check the kubeconfig's user"
            ) from None
        raise Failure(f"cannot {what}: {err}") from None
    except Unreachable as err:
        raise Failure(str(err)) from None
    except ConfigError as err:  # an exec credential plugin that fails
        raise Failure(f"cannot log in: {err}") from None


async def policy(client: Client, name: str) -> dict[str, Any]:
    """The policy `name`. A 404 is told apart by listing: no such policy (the list names
    those that exist), or no CRDs installed (the list is a 404 too)."""
    what = f"get ImagePrunePolicy {name}"
    found = await call(what, _unless_404(client.get(resources.Policy, name)))
    if found is not None:
        return found
    try:
        listed = await call("list ImagePrunePolicies", _unless_404(client.list(resources.Policy)))
    except Failure:  # no right to list, say: the GET's 404 has said enough
        raise Failure(f"no ImagePrunePolicy named {name!r}") from None
    if listed is None:
        raise Failure(
            f"the imageprune CRDs are not installed in this cluster (no resource "
            f"{names.POLICY_PLURAL}.{names.GROUP}): install the chart (docs/install.md)"
        )
    existing = ", ".join(sorted(p["metadata"]["name"] for p in listed[0])) or "none"
    raise Failure(f"no ImagePrunePolicy named {name!r} (existing: {existing})")


async def _unless_404(awaitable: Awaitable[T]) -> T | None:
    try:
        return await awaitable
    except ApiError as err:
        if err.status == 404:
            return None
        raise


async def tasks(client: Client, policy_name: str) -> list[dict[str, Any]]:
    """The policy's tasks (label imageprune.io/policy; the label may be a shortened
    name, so the spec is checked too), without their per-image lists: a page at a
    time, each task reduced as it arrives (a thousand full reports outgrow the
    client's answer bound)."""
    labels = {names.POLICY_LABEL: task.label_value(policy_name)}
    listing = client.list(
        resources.Task, labels=labels, chunk_size=watch.LIST_CHUNK, keep=task.essentials
    )
    found, _ = await call(f"list ImagePruneTasks of {policy_name}", listing)
    return [t for t in found if (t.get("spec") or {}).get("policyName") == policy_name]


async def node_task(client: Client, policy_name: str, node: str) -> dict[str, Any] | None:
    """The policy's task on `node`, by its name: one object, where listing the policy's
    tasks would fetch every node's report."""
    name = task.task_name(policy_name, node)
    found = await call(f"get ImagePruneTask {name}", _unless_404(client.get(resources.Task, name)))
    if found is None or (found.get("spec") or {}).get("policyName") != policy_name:
        return None
    return found


async def annotate(client: Client, name: str, annotations: Mapping[str, str]) -> dict[str, Any]:
    patch = {"metadata": {"annotations": dict(annotations)}}
    return await call(
        f"annotate ImagePrunePolicy {name}", client.merge_patch(resources.Policy, name, patch)
    )
