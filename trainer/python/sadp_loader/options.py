"""Options of the loader client, their defaults, and the gRPC channel they compile to.

Durations are milliseconds (``..._ms``), as everywhere in sadp-loader.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple, Union

import grpc

from .errors import invalid_argument

__all__ = ["TlsOptions", "ReconnectOptions", "ClientOptions", "backoff_delay_ms"]


@dataclass(frozen=True)
class TlsOptions:
    """TLS for the loader channel. PEM bytes; unset ``ca`` = the system roots.

    ``cert`` + ``key`` present a client certificate (mutual TLS).
    ``server_name`` overrides the name checked against the loader's certificate.
    """

    ca: Optional[bytes] = None
    cert: Optional[bytes] = None
    key: Optional[bytes] = None
    server_name: Optional[str] = None


@dataclass(frozen=True)
class ReconnectOptions:
    #: Consecutive failed (re)connects before the epoch fails; reset whenever a
    #: stream delivers a batch. 10 attempts with the defaults below wait >= ~20 s
    #: in all: a loader pod restart is survived.
    max_attempts: int = 10
    #: First backoff step.
    base_delay_ms: float = 250
    #: Cap of one step (equal jitter: half fixed, half random).
    max_delay_ms: float = 10_000


@dataclass(frozen=True)
class ClientOptions:
    #: host:port of the loader service.
    address: str
    #: Sent as ``authorization: Bearer <token>`` on every call.
    token: Optional[str] = None
    #: ``True`` = TLS with the system roots; a TlsOptions adds a CA and/or a client certificate.
    tls: Union[None, bool, TlsOptions] = None
    #: Deadline of DescribeEpoch and of a stream's first message (EpochInfo), which
    #: may wait for the scorer to compute the plan. Never the whole epoch.
    deadline_ms: float = 60_000
    #: A stream that delivers nothing for this long while the trainer waits for a
    #: batch is treated as broken and reopened at the cursor (a wedged loader;
    #: keepalive only catches dead connections). 0 disables.
    idle_timeout_ms: float = 120_000
    #: Largest message accepted. Default -1 = no limit: the loader caps its
    #: messages at 3 MiB, except that one sample larger than the cap is sent
    #: whole, so any fixed limit fails some dataset. Set a bound (bytes) to cap
    #: memory against a loader you do not trust.
    max_receive_message_bytes: int = -1
    reconnect: ReconnectOptions = field(default_factory=ReconnectOptions)
    #: HTTP/2 keepalive ping interval: far below cloud L4 load balancers' idle
    #: timeouts (AWS NLB drops idle flows after 350 s).
    keepalive_time_ms: float = 30_000
    #: How long a keepalive ping may go unanswered before the connection is
    #: dropped (the stream reopens at its cursor): a loaded loader may answer
    #: late. Capped at ``keepalive_time_ms``.
    keepalive_timeout_ms: float = 20_000
    #: Scored acks not yet confirmed by ScoresCommitted, kept for resending after
    #: a reconnect; beyond this the oldest are dropped (counted in
    #: ``stats.dropped_acks``). About 2.5 MB at batch size 128.
    max_pending_acks: int = 1024
    #: Extra grpc channel options (proxies, tests), appended last.
    channel_options: Tuple[Tuple[str, Any], ...] = ()


_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$")


def _positive(name: str, value: float, allow_zero: bool = False) -> float:
    if not isinstance(value, (int, float)) or value != value or value < 0 or (value == 0 and not allow_zero):
        raise invalid_argument("SADP_INVALID_OPTION", f"loader client option {name} must be a positive number, got {value!r}")
    return value


def validate(options: ClientOptions) -> ClientOptions:
    if not isinstance(options.address, str) or not _ADDRESS.match(options.address):
        raise invalid_argument(
            "SADP_INVALID_OPTION",
            f"loader address {options.address!r} is not host:port (e.g. 127.0.0.1:50052)",
        )
    _positive("deadline_ms", options.deadline_ms)
    _positive("idle_timeout_ms", options.idle_timeout_ms, allow_zero=True)
    _positive("keepalive_time_ms", options.keepalive_time_ms)
    _positive("keepalive_timeout_ms", options.keepalive_timeout_ms)
    _positive("max_pending_acks", options.max_pending_acks)
    _positive("reconnect.max_attempts", options.reconnect.max_attempts)
    _positive("reconnect.base_delay_ms", options.reconnect.base_delay_ms)
    _positive("reconnect.max_delay_ms", options.reconnect.max_delay_ms)
    if options.max_receive_message_bytes != -1:
        _positive("max_receive_message_bytes", options.max_receive_message_bytes)
    if options.token is not None and not re.fullmatch(r"[\x21-\x7e]+", options.token):
        raise invalid_argument("SADP_INVALID_OPTION", "loader client token must be printable ASCII without spaces")
    return options


def channel_options(options: ClientOptions) -> List[Tuple[str, Any]]:
    keepalive = int(options.keepalive_time_ms)
    return [
        ("grpc.max_receive_message_length", int(options.max_receive_message_bytes)),
        ("grpc.keepalive_time_ms", keepalive),
        # Rounded up: a valid 0.5 ms must not become 0 (no timeout at all).
        ("grpc.keepalive_timeout_ms", min(math.ceil(options.keepalive_timeout_ms), keepalive)),
        # Keep pinging during a long training step with no data on the wire.
        ("grpc.http2.max_pings_without_data", 0),
        *list(options.channel_options),
    ]


def create_channel(options: ClientOptions) -> grpc.Channel:
    opts = channel_options(options)
    tls = options.tls
    if tls is None or tls is False:
        return grpc.insecure_channel(options.address, options=opts)
    if tls is True:
        creds = grpc.ssl_channel_credentials()
    else:
        creds = grpc.ssl_channel_credentials(root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert)
        if tls.server_name:
            opts.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.secure_channel(options.address, creds, options=opts)


def metadata(options: ClientOptions) -> List[Tuple[str, str]]:
    return [("authorization", f"Bearer {options.token}")] if options.token else []


def backoff_delay_ms(attempt: int, base_ms: float, max_ms: float, rand: "random.Random | None" = None) -> float:
    """Equal jitter: half the step is fixed so a run of attempts always spans a
    restart, half is random so trainers spread out."""
    step = min(max_ms, base_ms * 2 ** max(0, attempt - 1))
    r = (rand or random).random()
    return step / 2 + r * (step / 2)


