"""Errors of the Kubernetes client, classified by what the caller should do: fix the
configuration, retry later, or act on the apiserver's answer."""

from __future__ import annotations


class KubeError(Exception):
    """Base of every error the client raises."""


class ConfigError(KubeError):
    """The credentials cannot be used (missing, unreadable or unsupported): retrying
    will not help, the operator of the agent must fix them."""


class Unreachable(KubeError):
    """No answer from the apiserver (refused, reset, TLS failure, timeout): retry later."""


class ApiError(KubeError):
    """The apiserver answered with an error status."""

    def __init__(self, message: str, *, status: int, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # the Status object's reason, e.g. NotFound, Conflict

    @property
    def retryable(self) -> bool:
        """Throttling and server-side trouble pass; a client error does not."""
        return self.status == 429 or self.status >= 500


class Gone(ApiError):
    """410: the resourceVersion a watch asked for is too old; list again."""
