"""``SadpIterableDataset``: one rank's share of each epoch as a
``torch.utils.data.IterableDataset`` of whole batches.

Decisions:

- **Whole batches, the loader's.** The loader chooses the batches (it splits the
  epoch's subset into equal runs per rank and pads them, so every rank makes the
  same number of steps), so each item is one batch: use
  ``DataLoader(dataset, batch_size=None)``, or iterate the dataset directly.
- **No DataLoader worker processes** (``num_workers`` must be 0). The scores of a
  batch flow back on the stream that delivered it, and a worker process cannot
  receive the training loop's ``ack``. Instead the stream runs in a background
  thread of the training process that receives, reassembles and decodes up to
  ``prefetch_batches`` batches ahead while the model trains (gRPC's network I/O and
  PIL's decoding release the GIL). Iterating inside a worker raises
  ``SadpError`` ``SADP_DATALOADER_WORKERS``.
- **Exact resume.** ``state_dict()`` records the epoch and the number of batches
  handed to the training loop, plus the scored acks the loader has not confirmed
  as durable; ``load_state_dict()`` restarts at the next batch and resends them
  (StatefulDataLoader style). Ack a batch before taking a snapshot after it.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import grpc
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .batch import AckRecord, Batch, EpochInfo
from .client import LoaderClient, create_loader_client
from .decode import Decoder, decode_field, default_decoders
from .epoch_stream import EpochStream
from .errors import SadpError, invalid_argument
from .options import ClientOptions

__all__ = ["SadpIterableDataset", "resolve_rank"]

RESERVED = ("index", "epoch", "ids", "weights", "padded", "keys")
STATE_VERSION = 1


def resolve_rank(rank: Optional[int] = None, world_size: Optional[int] = None) -> "tuple[int, int]":
    """Rank and world size: the arguments, else ``torch.distributed`` when it is
    initialised, else ``$RANK`` / ``$WORLD_SIZE`` (torchrun), else 0 / 1."""
    if rank is None or world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            r, w = dist.get_rank(), dist.get_world_size()
        else:
            try:
                r, w = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
            except ValueError as err:
                raise invalid_argument(
                    "SADP_INVALID_OPTION", f"$RANK / $WORLD_SIZE are not integers ({os.environ.get('RANK')!r}, {os.environ.get('WORLD_SIZE')!r})"
                ) from err
        rank = r if rank is None else rank
        world_size = w if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise invalid_argument("SADP_INVALID_OPTION", f"rank {rank} is not in [0, world_size {world_size})")
    return rank, world_size


def _collate(values: List[Any]) -> Any:
    import numpy as np

    if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return torch.tensor(values, dtype=torch.long)
    if values and all(isinstance(v, float) for v in values):
        return torch.tensor(values, dtype=torch.float32)
    if values and all(isinstance(v, np.ndarray) for v in values):
        first = values[0]
        if all(v.shape == first.shape and v.dtype == first.dtype for v in values) and first.dtype != object:
            return torch.from_numpy(np.stack(values))
    return values


class SadpIterableDataset(IterableDataset):
    """Batches of one rank's epochs as dicts:

    ``index`` (batch number in the epoch), ``epoch``, ``ids`` (LongTensor [B]),
    ``weights`` (FloatTensor [B]: multiply each loss by it), ``padded`` (BoolTensor
    [B]), ``keys`` (list of str), and one entry per field (extension): decoded by
    ``decoders`` (default ``decode.default_decoders()``), then collated: ints ->
    LongTensor, equal-shape arrays -> stacked tensor, else a list.

    Report scores with ``dataset.ack(batch, scores=..., losses=...)`` (one value
    per sample, for the *unweighted* loss). A batch not acked is acked without
    scores when the next one is requested.
    """

    def __init__(
        self,
        loader: Union[LoaderClient, ClientOptions, str],
        job: str,
        batch_size: int,
        *,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        epoch: int = 0,
        fields: Optional[Sequence[str]] = None,
        decoders: Optional[Mapping[str, Optional[Decoder]]] = None,
        prefetch_batches: int = 2,
        max_unacked_batches: int = 0,
        token: Optional[str] = None,
    ) -> None:
        super().__init__()
        if isinstance(loader, LoaderClient):
            self.client = loader
        elif isinstance(loader, ClientOptions):
            self.client = create_loader_client(loader)
        else:
            self.client = create_loader_client(address=loader, token=token)
        self.job = job
        self.batch_size = batch_size
        self.rank, self.world_size = resolve_rank(rank, world_size)
        self.fields = None if fields is None else list(fields)
        for f in self.fields or []:
            if f in RESERVED:
                raise invalid_argument("SADP_FIELD_RESERVED", f"field .{f} clashes with the batch key {f!r}")
        table = default_decoders()
        table.update(decoders or {})
        self.decoders = table
        if prefetch_batches < 1:
            raise invalid_argument("SADP_INVALID_OPTION", f"prefetch_batches must be >= 1, got {prefetch_batches}")
        self.prefetch_batches = prefetch_batches
        # The batches read ahead plus the one training and one being acked must
        # fit the loader's credit window, or the read-ahead stalls.
        self.max_unacked_batches = max_unacked_batches or max(4, prefetch_batches + 2)
        self._epoch = epoch
        self._cursor = 0
        self._resend: List[AckRecord] = []
        self._completed = False
        self._stream: Optional[EpochStream] = None
        self._held: Dict[int, Batch] = {}
        self._lock = threading.Lock()

    # -- epochs and state -----------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def info(self) -> Optional[EpochInfo]:
        """The current epoch's info once its stream opened."""
        return self._stream.info if self._stream is not None else None

    @property
    def stream(self) -> Optional[EpochStream]:
        return self._stream

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch the next iteration streams. Moving to another epoch
        than a loaded state's starts at its first batch (scores still pending from
        the old epoch are flushed to the loader first)."""
        if epoch != self._epoch:
            if self._resend:
                self._flush(self._epoch, self._resend)
            self._epoch, self._cursor, self._resend, self._completed = epoch, 0, [], False
            self._stream = None

    def steps(self, epoch: Optional[int] = None) -> int:
        """Batches each rank gets in ``epoch`` (default the current one); fixes its plan."""
        e = self._epoch if epoch is None else epoch
        return self.client.epoch_info(self.job, e, self.world_size, self.batch_size).steps

    def state_dict(self) -> Dict[str, Any]:
        with self._lock:
            pending = self._stream.pending_acks() if self._stream is not None else list(self._resend)
            return {
                "version": STATE_VERSION,
                "job": self.job,
                "rank": self.rank,
                "world_size": self.world_size,
                "batch_size": self.batch_size,
                "epoch": self._epoch,
                "cursor": self._cursor,
                "completed": self._completed,
                "pending_acks": [a.to_dict() for a in pending],
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise SadpError("SADP_STATE_MISMATCH", f"dataset state version {state.get('version')!r}, expected {STATE_VERSION}", grpc.StatusCode.INVALID_ARGUMENT)
        for k in ("job", "rank", "world_size", "batch_size"):
            if state[k] != getattr(self, k):
                raise SadpError(
                    "SADP_STATE_MISMATCH",
                    f"dataset state is for {k} {state[k]!r}, this dataset has {getattr(self, k)!r}",
                    grpc.StatusCode.INVALID_ARGUMENT,
                )
        self._epoch = int(state["epoch"])
        self._cursor = int(state["cursor"])
        self._completed = bool(state["completed"])
        self._resend = [AckRecord.from_dict(a) for a in state["pending_acks"]]
        self._stream = None

    def _flush(self, epoch: int, acks: List[AckRecord]) -> None:
        steps = self.client.epoch_info(self.job, epoch, self.world_size, self.batch_size).steps
        s = self.client.epoch(self.job, epoch, self.rank, self.world_size, self.batch_size, cursor=steps, resend_acks=acks)
        for _ in s:
            pass

    # -- scores ---------------------------------------------------------------------

    def ack(self, batch: Mapping[str, Any], scores: Any = None, losses: Any = None) -> None:
        """Acknowledges a batch this dataset yielded and reports its scores and/or
        unweighted losses (one per sample, padded ones included)."""
        raw = self._held.get(int(batch["index"]))
        if raw is None or int(batch["epoch"]) != self._epoch:
            raise invalid_argument(
                "SADP_ACK_INVALID", f"batch {batch['index']} of epoch {batch['epoch']} is not one this dataset is holding"
            )
        raw.ack(scores=scores, losses=losses)

    # -- iteration ------------------------------------------------------------------

    def _to_item(self, b: Batch) -> Dict[str, Any]:
        item: Dict[str, Any] = {
            "index": b.index,
            "epoch": self._epoch,
            "ids": torch.tensor(b.ids, dtype=torch.long),
            "weights": torch.tensor(b.weights, dtype=torch.float32),
            "padded": torch.tensor(b.padded, dtype=torch.bool),
            "keys": list(b.keys),
        }
        names = self.fields if self.fields is not None else list(b.fields)
        for f in names:
            if f in RESERVED:
                raise SadpError(
                    "SADP_FIELD_RESERVED",
                    f"batch {b.index}: field .{f} clashes with the batch key {f!r}; pass fields= without it",
                    grpc.StatusCode.INVALID_ARGUMENT,
                )
            members = b.fields.get(f)
            if members is None:
                raise SadpError(
                    "SADP_SAMPLE_DECODE",
                    f"batch {b.index}: no field .{f} (fields: {', '.join(b.fields) or 'none'})",
                    grpc.StatusCode.INVALID_ARGUMENT,
                )
            item[f] = _collate([decode_field(f, data, b.keys[j], b.ids[j], self.decoders) for j, data in enumerate(members)])
        return item

    def __iter__(self):
        if get_worker_info() is not None:
            raise SadpError(
                "SADP_DATALOADER_WORKERS",
                "SadpIterableDataset runs its stream in the training process (acks carry scores back on it): "
                "use DataLoader(dataset, batch_size=None, num_workers=0); decoding already runs in a background thread",
                grpc.StatusCode.FAILED_PRECONDITION,
            )
        epoch = self._epoch
        stream = self.client.epoch(
            self.job,
            epoch,
            self.rank,
            self.world_size,
            self.batch_size,
            cursor=self._cursor,
            max_unacked_batches=self.max_unacked_batches,
            resend_acks=self._resend,
        )
        with self._lock:
            self._stream = stream
            self._held = {}
        q: "queue.Queue[tuple]" = queue.Queue(maxsize=self.prefetch_batches)
        stop = threading.Event()

        def put(item: tuple) -> None:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def produce() -> None:
            try:
                while not stop.is_set():
                    b = stream.next_batch()
                    if b is None:
                        put(("end", None, None))
                        return
                    put(("batch", b, self._to_item(b)))
            except BaseException as err:
                put(("error", None, err))

        thread = threading.Thread(target=produce, name=f"sadp-dataset-rank{self.rank}", daemon=True)
        thread.start()
        prev: Optional[Batch] = None
        try:
            while True:
                if prev is not None:
                    self._held.pop(prev.index, None)
                    if stream.cursor <= prev.index:
                        prev.ack()
                kind, b, payload = q.get()
                if kind == "end":
                    with self._lock:
                        self._completed = True
                        self._resend = []
                    return
                if kind == "error":
                    raise payload
                assert b is not None
                with self._lock:
                    self._held[b.index] = b
                    self._cursor = b.index + 1
                prev = b
                yield payload
        finally:
            stop.set()
            if not self._completed:
                with self._lock:
                    self._resend = stream.pending_acks()
                stream.close()
            thread.join(timeout=30)
