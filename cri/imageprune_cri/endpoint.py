"""Finding the runtime's CRI socket the way crictl does: an explicit endpoint, then
CONTAINER_RUNTIME_ENDPOINT, then the first default socket that exists.

Every endpoint is checked before it is dialled: gRPC would otherwise turn a bad one
into an "unavailable" error (indistinguishable from a stopped runtime), or into its
own log lines on stderr, or into an exception about text encoding."""

from __future__ import annotations

import dataclasses
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

# sockaddr_un.sun_path on Linux is 108 bytes, including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


@dataclasses.dataclass(frozen=True)
class Endpoint:
    target: str  # unix:///path, ready to dial
    origin: str  # where it came from, for messages: a flag, the variable or a default

    def describe(self) -> str:
        return f"{self.target} (from {self.origin})"


def normalize(endpoint: str, *, origin: str = "--runtime-endpoint") -> str:
    """`/path` or `unix:///path` -> `unix:///path`. Only unix sockets: the CRI is a
    node-local API and runtimes do not serve it over TCP. Raises EndpointInvalid,
    naming `origin`, for anything that cannot be a unix socket path."""
    text = endpoint.strip()
    if text.startswith("/"):
        path = text
    elif text.startswith("unix://") and text.removeprefix("unix://").startswith("/"):
        path = text.removeprefix("unix://")
    else:
        raise errors.EndpointInvalid(
            f"{origin}: {_printable(text)} is not a unix socket: use unix:///path/to/socket "
            "(the CRI is served on a local unix socket only)"
        )
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 reach us as lone surrogates (surrogateescape).
        raise errors.EndpointInvalid(
            f"{origin}: the socket path {_printable(path)} is not valid UTF-8, which "
            "gRPC requires: use a path of UTF-8 characters"
        ) from None
    if "\x00" in path:
        raise errors.EndpointInvalid(f"{origin}: the socket path contains a NUL byte")
    if size > MAX_SOCKET_PATH_BYTES:
        raise errors.EndpointInvalid(
            f"{origin}: the socket path is {size} bytes long; a unix socket path can have "
            f"at most {MAX_SOCKET_PATH_BYTES}: use a shorter path (or a symlink to it)"
        )
    return "unix://" + path


def _printable(text: str) -> str:
    """The text in quotes, with bytes that are not UTF-8 shown as \\xNN (printing
    them as they are would fail)."""
    return "'" + text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") + "'"


def socket_path(endpoint: str) -> str:
    return normalize(endpoint).removeprefix("unix://")


def resolve(
    explicit: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    candidates: Sequence[str] = DEFAULT_SOCKETS,
) -> Endpoint:
    """The endpoint to dial, with where it came from."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return Endpoint(normalize(explicit), "--runtime-endpoint")
    if env.get(ENV_VAR):
        origin = f"${ENV_VAR}"
        return Endpoint(normalize(env[ENV_VAR], origin=origin), origin)
    for path in candidates:
        if os.path.exists(path):
            return Endpoint(normalize(path, origin="default socket"), "default socket")
    tried = ", ".join(candidates)
    raise errors.EndpointNotFound(
        f"no container runtime socket found (tried {tried}): set --runtime-endpoint or {ENV_VAR}"
    )
