"""The trainer's handle on a loader service: one gRPC channel, epochs as
reconnecting iterators, and DescribeEpoch with retries. Thread-safe: ranks in
threads, or a background reader per stream, may share one client."""

from __future__ import annotations

import time
from typing import Any, Optional, Sequence

import grpc

from ._proto.sadp.v1 import loader_pb2, loader_pb2_grpc
from .batch import AckRecord, EpochInfo
from .epoch_stream import EpochStream
from .errors import SadpError, is_retryable_status, status_of
from .options import ClientOptions, backoff_delay_ms, create_channel, metadata, validate

__all__ = ["LoaderClient", "create_loader_client"]


class LoaderClient:
    def __init__(self, options: ClientOptions) -> None:
        self.options = validate(options)
        self._channel = create_channel(options)
        self._stub = loader_pb2_grpc.LoaderStub(self._channel)

    @property
    def address(self) -> str:
        return self.options.address

    def epoch(
        self,
        job: str,
        epoch: int,
        rank: int,
        world_size: int,
        batch_size: int,
        cursor: int = 0,
        max_unacked_batches: int = 0,
        resend_acks: Sequence[AckRecord] = (),
    ) -> EpochStream:
        """Opens one rank's epoch (lazily, at the first batch). ``cursor``: batches
        of this rank already acknowledged (a checkpoint's); ``resend_acks``: the
        checkpoint's unconfirmed scored acks; ``max_unacked_batches``: the credit
        window, 0 = the loader's (4)."""
        return EpochStream(
            self._stub,
            self.options,
            job,
            epoch,
            rank,
            world_size,
            batch_size,
            cursor=cursor,
            max_unacked_batches=max_unacked_batches,
            resend_acks=resend_acks,
        )

    def epoch_info(self, job: str, epoch: int, world_size: int, batch_size: int) -> EpochInfo:
        """The shape of an epoch (DescribeEpoch), retried like a stream open. Fixes the epoch's plan."""
        what = f"DescribeEpoch {epoch} of job {job}"
        r = self.options.reconnect
        attempt = 0
        while True:
            attempt += 1
            try:
                res = self._stub.DescribeEpoch(
                    loader_pb2.DescribeEpochRequest(job_id=job, epoch=epoch, world_size=world_size, batch_size=batch_size),
                    metadata=metadata(self.options),
                    timeout=self.options.deadline_ms / 1000,
                )
                return EpochInfo.from_proto(res)
            except grpc.RpcError as err:
                code, details = status_of(err)
                retryable = is_retryable_status(code)
                last = attempt >= r.max_attempts
                if not retryable or last:
                    e = SadpError(
                        "SADP_LOADER_RETRIES_EXHAUSTED" if retryable else f"SADP_LOADER_{code.name}",
                        f"{what}: loader at {self.address} answered {code.name} (attempt {attempt}): {details}",
                        grpc.StatusCode.UNAVAILABLE if retryable else code,
                        details,
                    )
                    raise e from err
                time.sleep(backoff_delay_ms(attempt, r.base_delay_ms, r.max_delay_ms) / 1000)

    def close(self) -> None:
        """Closes the channel; open streams fail."""
        self._channel.close()

    def __enter__(self) -> "LoaderClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def create_loader_client(options: Optional[ClientOptions] = None, **kwargs: Any) -> LoaderClient:
    """``create_loader_client(ClientOptions(address=...))`` or ``create_loader_client(address=..., token=...)``."""
    if options is None:
        options = ClientOptions(**kwargs)
    elif kwargs:
        raise TypeError("pass either ClientOptions or keyword options, not both")
    return LoaderClient(options)
