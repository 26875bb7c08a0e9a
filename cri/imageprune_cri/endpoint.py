"""Finding the runtime's CRI socket the way crictl does: an explicit endpoint, then
CONTAINER_RUNTIME_ENDPOINT, then the first default socket that exists."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from imageprune_cri import errors

ENV_VAR = "CONTAINER_RUNTIME_ENDPOINT"

# containerd, CRI-O, cri-dockerd (new and old paths), in crictl's order of preference.
DEFAULT_SOCKETS: tuple[str, ...] = (
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/run/cri-dockerd.sock",
    "/var/run/cri-dockerd.sock",
)


def normalize(endpoint: str) -> str:
    """`/path` or `unix:///path` -> `unix:///path`. Only unix sockets: the CRI is a
    node-local API and runtimes do not serve it over TCP."""
    endpoint = endpoint.strip()
    if endpoint.startswith("/"):
        return "unix://" + endpoint
    if endpoint.startswith("unix://") and endpoint.removeprefix("unix://").startswith("/"):
        return endpoint
    raise errors.EndpointNotFound(
        f"runtime endpoint {endpoint!r} is not a unix socket: use unix:///path/to/socket"
    )


def socket_path(endpoint: str) -> str:
    return normalize(endpoint).removeprefix("unix://")


def resolve(
    explicit: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    candidates: Sequence[str] = DEFAULT_SOCKETS,
) -> str:
    """The endpoint to dial, as `unix:///...`."""
    env = os.environ if environ is None else environ
    if explicit:
        return normalize(explicit)
    if env.get(ENV_VAR):
        return normalize(env[ENV_VAR])
    for path in candidates:
        if os.path.exists(path):
            return normalize(path)
    tried = ", ".join(candidates)
    raise errors.EndpointNotFound(
        f"no container runtime socket found (tried {tried}): set --runtime-endpoint or {ENV_VAR}"
    )
