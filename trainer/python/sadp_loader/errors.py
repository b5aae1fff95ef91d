"""The one exception type of the SDK, and which gRPC statuses a reconnect can fix."""

from __future__ import annotations

import re
from typing import Optional

import grpc

__all__ = ["SadpError", "is_retryable_status"]

# Statuses that a reconnect with the same cursor can never fix: the request,
# the credentials or the job itself is wrong. Everything else (UNAVAILABLE, a
# reset stream surfacing as INTERNAL or UNKNOWN, CANCELLED by a draining
# server, an idle or open timeout) is retried with backoff.
_FATAL = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DATA_LOSS,
    }
)

_REMOTE_CODE = re.compile(r"^(SADP_[A-Z0-9_]+):")


def is_retryable_status(code: grpc.StatusCode) -> bool:
    return code not in _FATAL


class SadpError(Exception):
    """Every failure the SDK raises.

    ``code``        stable string code, e.g. ``SADP_LOADER_PERMISSION_DENIED``,
                    ``SADP_LOADER_RETRIES_EXHAUSTED``, ``SADP_ACK_INVALID``.
    ``grpc_code``   the gRPC status (``grpc.StatusCode``) of the failure, or the
                    nearest one for local errors (``INVALID_ARGUMENT`` for a bad ack).
    ``remote_code`` the loader's own ``SADP_...`` code when its status details
                    carried one (the loader sends ``"SADP_X: message"``), else None.
    ``details``     the raw status details.
    ``__cause__``   the underlying ``grpc.RpcError`` or exception, when there is one.
    """

    def __init__(
        self,
        code: str,
        message: str,
        grpc_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        details: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.grpc_code = grpc_code
        self.details = details if details is not None else message
        m = _REMOTE_CODE.match(self.details)
        self.remote_code: Optional[str] = m.group(1) if m else None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self):  # picklable across processes (DataLoader workers, multiprocessing)
        return (SadpError, (self.code, self.message, self.grpc_code, self.details))


def invalid_argument(code: str, message: str) -> SadpError:
    return SadpError(code, message, grpc.StatusCode.INVALID_ARGUMENT)


def status_of(err: BaseException) -> "tuple[grpc.StatusCode, str]":
    """The status code and details of anything a gRPC call raised."""
    if isinstance(err, SadpError):
        return err.grpc_code, err.details
    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        code = err.code()  # type: ignore[attr-defined]
        details = err.details() if hasattr(err, "details") else str(err)  # type: ignore[attr-defined]
        return code, details or ""
    return grpc.StatusCode.UNKNOWN, str(err)
