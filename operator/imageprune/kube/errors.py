"""Errors of the Kubernetes client, classified by what the caller should do: fix the
configuration, retry later, or act on the apiserver's answer. `translated` turns
lightkube's and httpx's exceptions into these, so callers catch ours only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx2
import lightkube
import msgspec


class KubeError(Exception):
    """Base of every error the client raises."""


class ConfigError(KubeError):
    """The credentials cannot be used (missing, unreadable, unsupported, or a credential
    plugin that fails): retrying will not help, a person must fix them."""


class Unreachable(KubeError):
    """No usable answer from the apiserver (refused, reset, TLS failure, timeout,
    garbage): retry later."""


class AnswerTooLarge(httpx2.ReadError):
    """The transport's bound on an answer (or a watch event) was passed."""


class ApiError(KubeError):
    """The apiserver answered with an error status."""

    def __init__(self, message: str, *, status: int, reason: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # the Status object's reason, e.g. NotFound, Conflict
        # The Status object's message, e.g. which verb on which resource a 403 refused.
        self.detail = detail

    @property
    def retryable(self) -> bool:
        """Throttling and server-side trouble pass; a client error does not."""
        return self.status == 429 or self.status >= 500


class Gone(ApiError):
    """410: the resourceVersion a watch asked for is too old; list again."""


@contextlib.contextmanager
def translated(what: str, server: str) -> Iterator[None]:
    """Raise our errors for lightkube's and httpx's; `what` names the call."""
    try:
        yield
    except lightkube.ApiError as err:
        status = err.status
        code = int(status.code or 500)
        kind = Gone if code == 410 else ApiError
        text = f"{what}: HTTP {code} {status.reason or ''}: {status.message or ''}"
        raise kind(
            text, status=code, reason=status.reason or "", detail=status.message or ""
        ) from None
    except httpx2.HTTPStatusError as err:  # an error answer that is not a Status object
        code = err.response.status_code
        raise ApiError(f"{what}: HTTP {code}", status=code) from None
    except (httpx2.TimeoutException, TimeoutError):  # TimeoutError: the call's own deadline
        raise Unreachable(f"the apiserver at {server} did not answer {what} in time") from None
    except AnswerTooLarge as err:
        raise Unreachable(
            f"the apiserver at {server} sent too large an answer to {what}: {err}"
        ) from None
    except httpx2.TransportError as err:
        raise Unreachable(f"cannot reach the apiserver at {server} ({what}): {err}") from None
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as err:
        raise Unreachable(
            f"the apiserver at {server} sent an invalid answer to {what}: {err}"
        ) from None
