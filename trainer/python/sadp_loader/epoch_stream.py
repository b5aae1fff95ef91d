"""One rank's epoch over the StreamEpoch bidirectional stream, surviving loader restarts.

Invariants (the TypeScript SDK's, trainer/client/epoch-stream.ts):

- ``cursor`` = batches acknowledged. A reopen sends it; batches already handed
  to the consumer are dropped if the loader sends them again, so nothing is
  yielded twice and nothing is skipped.
- Acks carrying scores stay pending until a ScoresCommitted on the stream they
  were last sent on covers them, and are resent after every reopen, so no
  acknowledged score is lost when a loader dies. At the end of an epoch the
  stream is reopened once at the end to flush scores the loader did not confirm.
- At most one call is open. Each call has one reader thread that moves
  messages into a bounded queue (16 messages: gRPC flow control stops the
  loader beyond that), so the network overlaps the consumer's compute.
- ``ack()`` may be called from any thread; the batches themselves are
  consumed by one thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence

import grpc

from ._proto.sadp.v1 import loader_pb2
from .batch import AckRecord, Batch, EpochInfo, to_ack_record
from .errors import SadpError, invalid_argument, is_retryable_status, status_of
from .options import ClientOptions, backoff_delay_ms, metadata


@dataclass(frozen=True)
class _JoinedSample:
    """A sample reassembled from the pieces it was split into across parts."""

    id: int
    key: str
    weight: float
    padded: bool
    fields: Dict[str, bytes]

__all__ = ["EpochStream", "EpochStreamStats"]

#: Messages buffered from the socket per call (bounded read-ahead).
READ_HIGH_WATER = 16
#: Longest single wait on the message queue, so idleness is re-judged as acks arrive.
_POLL_S = 1.0

#: Failures detected by the client that a reopen cannot fix.
_LOCAL_FATAL = frozenset({"SADP_LOADER_PROTOCOL", "SADP_LOADER_PLAN_CHANGED", "SADP_LOADER_CURSOR_RANGE"})

_END = object()


@dataclass
class EpochStreamStats:
    #: Streams opened after the first (reconnects and end-of-epoch flushes).
    reopens: int = 0
    #: Batches handed to the consumer.
    batches: int = 0
    #: Member bytes in those batches.
    bytes: int = 0
    #: Scored acks dropped because more than ``max_pending_acks`` awaited a commit.
    dropped_acks: int = 0
    #: Batches received again after a reopen and dropped (already handed out).
    duplicates_dropped: int = 0


@dataclass
class _Pending:
    record: AckRecord
    gen: int = -1
    seq: int = -1


class _Connection:
    """One StreamEpoch call: requests through an unbounded queue (acks are small and
    paced by the batches), responses through a bounded queue fed by a reader thread."""

    def __init__(self, stub: Any, md: List[Any], gen: int, what: str) -> None:
        self.gen = gen
        self.first_seq: Dict[int, int] = {}
        self.seq = 0
        self.half_closed = False
        self._requests: "queue.Queue[Any]" = queue.Queue()
        self._responses: "queue.Queue[Any]" = queue.Queue(maxsize=READ_HIGH_WATER)
        self._closed = threading.Event()
        self._final: Optional[tuple] = None
        self.call = stub.StreamEpoch(self._request_iter(), metadata=md)
        self._reader = threading.Thread(target=self._read, name=f"sadp-stream-{what}-{gen}", daemon=True)
        self._reader.start()

    def _request_iter(self) -> Iterator[Any]:
        while True:
            m = self._requests.get()
            if m is _END:
                return
            yield m

    def _put(self, item: tuple) -> bool:
        while not self._closed.is_set():
            try:
                self._responses.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for m in self.call:
                if not self._put(("msg", m)):
                    return
            self._put(("end", None))
        except BaseException as err:  # grpc.RpcError, or a bug surfaced to the consumer
            self._put(("error", err))

    @property
    def finished(self) -> bool:
        return self._final is not None or self._closed.is_set()

    def next(self, timeout_s: Optional[float]) -> Optional[tuple]:
        """The next ("msg"|"end"|"error", value); None when nothing came within timeout_s."""
        if self._final is not None:
            return self._final
        try:
            item = self._responses.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if item[0] != "msg":
            self._final = item
        return item

    def write(self, message: Any) -> None:
        if not self.finished and not self.half_closed:
            self._requests.put(message)

    def send_ack(self, record: AckRecord) -> int:
        self.seq += 1
        self.first_seq.setdefault(record.index, self.seq)
        ack = loader_pb2.Ack(index=record.index, ids=record.ids)
        if record.scores is not None:
            ack.scores.extend(record.scores)
        if record.losses is not None:
            ack.losses.extend(record.losses)
        self.write(loader_pb2.StreamEpochRequest(ack=ack))
        return self.seq

    def end(self) -> None:
        """Half-closes: tells the loader no more acks follow."""
        if self.half_closed or self.finished:
            return
        self.half_closed = True
        self._requests.put(_END)

    def close(self) -> None:
        """Cancels the call if still open and stops the reader thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.call.cancel()
        self._requests.put(_END)
        try:  # wake a consumer blocked in next()
            self._responses.put_nowait(("error", SadpError("SADP_CANCELLED", "stream closed", grpc.StatusCode.CANCELLED)))
        except queue.Full:
            pass


def _check_uint(name: str, value: int, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or value > 0xFFFFFFFF:
        raise invalid_argument("SADP_INVALID_OPTION", f"epoch request {name} must be an integer >= {minimum}, got {value!r}")
    return value


class EpochStream:
    """One rank's epoch. Iterate it once (``for batch in stream``); a batch not
    acked is acked without scores when the next one is requested.

    ``next_batch()`` is the same without that implicit ack, for consumers that
    read ahead (SadpIterableDataset): they must ack every batch themselves.
    """

    def __init__(
        self,
        stub: Any,
        options: ClientOptions,
        job: str,
        epoch: int,
        rank: int,
        world_size: int,
        batch_size: int,
        cursor: int = 0,
        max_unacked_batches: int = 0,
        resend_acks: Sequence[AckRecord] = (),
    ) -> None:
        if not job:
            raise invalid_argument("SADP_INVALID_OPTION", "epoch request job is empty")
        _check_uint("epoch", epoch)
        _check_uint("world_size", world_size, 1)
        _check_uint("rank", rank)
        if rank >= world_size:
            raise invalid_argument("SADP_INVALID_OPTION", f"epoch request rank {rank} is not below world_size {world_size}")
        _check_uint("batch_size", batch_size, 1)
        _check_uint("cursor", cursor)
        _check_uint("max_unacked_batches", max_unacked_batches)
        self._stub = stub
        self._options = options
        self._req = (job, epoch, rank, world_size, batch_size, max_unacked_batches)
        self._what = f"epoch {epoch} of job {job} (rank {rank}/{world_size})"
        self._lock = threading.RLock()
        self._cursor = cursor
        self._handed = cursor
        self._committed = -1
        self._info: Optional[EpochInfo] = None
        self._pending: "OrderedDict[int, _Pending]" = OrderedDict()
        self._conn: Optional[_Connection] = None
        self._gen = 0
        self._started = False
        self._closed = False
        self._runner: Optional[Iterator[Batch]] = None
        self.stats = EpochStreamStats()
        for r in resend_acks:
            self._remember(r)

    # -- state a checkpoint records -------------------------------------------------

    @property
    def cursor(self) -> int:
        """Batches acknowledged: reopen here to resume."""
        return self._cursor

    @property
    def committed_through(self) -> int:
        """Highest index covered by a ScoresCommitted, -1 before the first."""
        return self._committed

    @property
    def info(self) -> Optional[EpochInfo]:
        """The epoch's info once the first stream has opened."""
        return self._info

    def pending_acks(self) -> List[AckRecord]:
        """Copies of the scored acks not yet committed (for a checkpoint)."""
        with self._lock:
            return [p.record for p in self._pending.values()]

    # -- iteration ------------------------------------------------------------------

    def __iter__(self) -> Iterator[Batch]:
        self._start()
        return self._iterate()

    def _iterate(self) -> Iterator[Batch]:
        prev: Optional[Batch] = None
        try:
            while True:
                if prev is not None and self._cursor <= prev.index:
                    self._ack(prev, None, None)
                b = self.next_batch()
                if b is None:
                    return
                prev = b
                yield b
        finally:
            self.close()

    def next_batch(self) -> Optional[Batch]:
        """The next batch, or None at the end of the epoch (after the scores are flushed)."""
        if self._runner is None:
            self._start()
        assert self._runner is not None
        return next(self._runner, None)

    def _start(self) -> None:
        if self._started:
            raise SadpError(
                "SADP_EPOCH_STREAM_REUSED",
                f"{self._what}: an epoch stream can be iterated once; open a new one with its cursor",
                grpc.StatusCode.FAILED_PRECONDITION,
            )
        self._started = True
        self._runner = self._run()

    def close(self) -> None:
        """Cancels the open call (from any thread); iteration then ends with SADP_CANCELLED."""
        with self._lock:
            self._closed = True
            conn = self._conn
        if conn is not None:
            conn.close()

    # -- acks and commits -----------------------------------------------------------

    def _remember(self, record: AckRecord) -> None:
        self._pending.pop(record.index, None)  # re-insert: order = age for dropping
        self._pending[record.index] = _Pending(record)
        while len(self._pending) > self._options.max_pending_acks:
            self._pending.popitem(last=False)
            self.stats.dropped_acks += 1

    def _ack(self, batch: Batch, scores: Any, losses: Any) -> None:
        record = to_ack_record(batch, scores, losses)
        with self._lock:
            if batch.index + 1 > self._cursor:
                self._cursor = batch.index + 1
            scored = record.scores is not None or record.losses is not None
            if scored:
                self._remember(record)
            conn = self._conn
            if conn is None or conn.finished or conn.half_closed:
                return  # resent (if scored) after the reopen
            seq = conn.send_ack(record)
            if scored:
                entry = self._pending.get(record.index)
                if entry is not None:
                    entry.gen, entry.seq = conn.gen, seq

    def _on_committed(self, conn: _Connection, through: int) -> None:
        with self._lock:
            if through > self._committed:
                self._committed = through
            # Conservative: an ack is durable if it was sent on this call no later
            # than the first ack of index `through`, which the loader had received.
            bound = conn.first_seq.get(through, float("inf"))
            for index in [i for i, p in self._pending.items() if i <= through and p.gen == conn.gen and p.seq <= bound]:
                del self._pending[index]

    # -- the state machine ----------------------------------------------------------

    def _open(self) -> _Connection:
        job, epoch, rank, world, bs, unacked = self._req
        with self._lock:
            if self._closed:
                raise SadpError("SADP_CANCELLED", f"{self._what}: stream closed", grpc.StatusCode.CANCELLED)
            self._gen += 1
            conn = _Connection(self._stub, metadata(self._options), self._gen, f"{rank}")
            conn.write(
                loader_pb2.StreamEpochRequest(
                    open=loader_pb2.OpenEpoch(
                        job_id=job,
                        epoch=epoch,
                        rank=rank,
                        world_size=world,
                        batch_size=bs,
                        cursor=self._cursor,
                        max_unacked_batches=unacked,
                    )
                )
            )
            self._conn = conn
            return conn

    def _resend(self, conn: _Connection) -> None:
        with self._lock:
            for p in self._pending.values():
                p.gen, p.seq = conn.gen, conn.send_ack(p.record)

    def _accept_info(self, m: Any) -> EpochInfo:
        info = EpochInfo.from_proto(m)
        prev = self._info
        if prev is not None and (prev.plan_digest != info.plan_digest or prev.steps != info.steps):
            msg = (
                f"{self._what}: the plan changed across a reconnect (digest {prev.plan_digest} -> {info.plan_digest}, "
                f"steps {prev.steps} -> {info.steps}); resuming at cursor {self._cursor} would not continue the same epoch"
            )
            raise SadpError("SADP_LOADER_PLAN_CHANGED", msg, grpc.StatusCode.FAILED_PRECONDITION)
        if self._cursor > info.steps:
            msg = f"{self._what}: cursor {self._cursor} is past the epoch's {info.steps} batches"
            raise SadpError("SADP_LOADER_CURSOR_RANGE", msg, grpc.StatusCode.OUT_OF_RANGE)
        self._info = info
        return info

    def _retryable(self, err: BaseException) -> bool:
        if isinstance(err, SadpError):
            return err.code not in _LOCAL_FATAL and err.code != "SADP_CANCELLED" and is_retryable_status(err.grpc_code)
        if not isinstance(err, grpc.RpcError):
            return False
        code, details = status_of(err)
        # A message over max_receive_message_bytes fails the same way every time.
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
            return False
        return is_retryable_status(code)

    def _fail(self, err: BaseException) -> SadpError:
        if isinstance(err, SadpError):
            return err
        code, details = status_of(err)
        e = SadpError(
            f"SADP_LOADER_{code.name}",
            f"{self._what}: loader at {self._options.address} answered {code.name}: {details}",
            code,
            details,
        )
        e.__cause__ = err
        return e

    def _wait(self, conn: _Connection, first: bool) -> tuple:
        """The next message of `conn`, applying the open deadline or the idle timeout.
        Idle time only counts while every batch handed out is acked (the loader, not
        the trainer, is then the one we wait for)."""
        opts = self._options
        start = time.monotonic()
        while True:
            if first:
                limit = opts.deadline_ms / 1000
            elif opts.idle_timeout_ms > 0 and self._cursor >= self._handed:
                limit = opts.idle_timeout_ms / 1000
            else:
                limit = None
            waited = time.monotonic() - start
            if limit is not None and waited >= limit:
                what = "EpochInfo" if first else "a message"
                msg = f"{self._what}: no {what} from the loader for {int(limit * 1000)} ms"
                raise SadpError("SADP_LOADER_TIMEOUT", msg, grpc.StatusCode.DEADLINE_EXCEEDED)
            step = _POLL_S if limit is None else min(_POLL_S, limit - waited)
            item = conn.next(step)
            if item is None:
                if self._cursor < self._handed:
                    start = time.monotonic()  # the trainer holds the stream; restart the idle clock
                continue
            return item

    def _run(self) -> Iterator[Batch]:
        opts = self._options
        failures = 0
        last_error: Optional[BaseException] = None
        flushed = False
        opened = False
        while True:
            if failures > 0:
                if failures >= opts.reconnect.max_attempts:
                    last = self._fail(last_error) if last_error else None
                    e = SadpError(
                        "SADP_LOADER_RETRIES_EXHAUSTED",
                        f"{self._what}: {failures} consecutive attempts failed at cursor {self._cursor}; "
                        f"last: {last.message if last else '?'}",
                        grpc.StatusCode.UNAVAILABLE,
                        last.details if last else None,
                    )
                    raise e from last_error
                time.sleep(backoff_delay_ms(failures, opts.reconnect.base_delay_ms, opts.reconnect.max_delay_ms) / 1000)
            if opened:
                self.stats.reopens += 1
            opened = True
            conn = self._open()
            try:
                kind, first = self._wait(conn, True)
                if kind == "error":
                    raise first
                if kind == "end":
                    raise SadpError(
                        "SADP_LOADER_STREAM_ENDED", f"{self._what}: loader ended the stream before EpochInfo", grpc.StatusCode.UNAVAILABLE
                    )
                if first.WhichOneof("kind") != "info":
                    raise SadpError(
                        "SADP_LOADER_PROTOCOL",
                        f"{self._what}: first message is {first.WhichOneof('kind')}, not info",
                        grpc.StatusCode.INTERNAL,
                    )
                info = self._accept_info(first.info)
                self._resend(conn)
                next_index = self._cursor
                samples: List[Any] = []
                expect_part = 0
                while True:
                    if self._cursor >= info.steps:
                        conn.end()
                    kind, msg = self._wait(conn, False)
                    if kind == "error":
                        raise msg
                    if kind == "end":
                        break
                    which = msg.WhichOneof("kind")
                    if which == "committed":
                        self._on_committed(conn, msg.committed.through_index)
                        continue
                    if which != "batch":
                        raise SadpError(
                            "SADP_LOADER_PROTOCOL", f"{self._what}: unexpected {which} message mid-stream", grpc.StatusCode.INTERNAL
                        )
                    part = msg.batch
                    if part.index != next_index or part.part != expect_part or part.part >= part.parts:
                        raise SadpError(
                            "SADP_LOADER_PROTOCOL",
                            f"{self._what}: got batch {part.index} part {part.part}/{part.parts}, "
                            f"expected batch {next_index} part {expect_part}",
                            grpc.StatusCode.INTERNAL,
                        )
                    samples.extend(part.samples)
                    if part.part < part.parts - 1:
                        expect_part += 1
                        continue
                    index = part.index
                    got, samples, expect_part = samples, [], 0
                    next_index += 1
                    failures = 0
                    if index < self._handed:
                        self.stats.duplicates_dropped += 1  # handed out before a reopen
                        continue
                    batch = self._assemble(index, got, info)
                    self._handed = index + 1
                    self.stats.batches += 1
                    self.stats.bytes += batch.nbytes
                    yield batch
                # The loader ended the call with OK.
                if self._cursor >= info.steps:
                    with self._lock:
                        pending = len(self._pending)
                    if pending == 0 or flushed:
                        return
                    # Scores acked at the very end were not confirmed: reopen at the
                    # end once, resend them and let the loader commit.
                    flushed = True
                    continue
                raise SadpError(
                    "SADP_LOADER_STREAM_ENDED",
                    f"{self._what}: loader ended the stream at batch {self._cursor} of {info.steps}",
                    grpc.StatusCode.UNAVAILABLE,
                )
            except BaseException as err:
                if isinstance(err, GeneratorExit):
                    raise
                if self._closed:
                    raise SadpError("SADP_CANCELLED", f"{self._what}: stream closed", grpc.StatusCode.CANCELLED) from err
                if not self._retryable(err):
                    if isinstance(err, grpc.RpcError):
                        raise self._fail(err) from err
                    raise
                failures += 1
                last_error = err
            finally:
                conn.close()
                with self._lock:
                    if self._conn is conn:
                        self._conn = None

    def _assemble(self, index: int, pieces: List[Any], info: EpochInfo) -> Batch:
        samples = self._join_pieces(index, pieces)
        n = len(samples)
        names = list(info.fields)
        for s in samples:
            for f in s.fields:
                if f not in names:
                    names.append(f)
        fields: Dict[str, List[bytes]] = {f: [b""] * n for f in names}
        for j, s in enumerate(samples):
            for f, data in s.fields.items():
                fields[f][j] = data
        return Batch(
            index=index,
            ids=[s.id for s in samples],
            keys=[s.key for s in samples],
            weights=[s.weight for s in samples],
            padded=[s.padded for s in samples],
            fields=fields,
            info=info,
            _ack=self._ack,
        )

    def _join_pieces(self, index: int, pieces: List[Any]) -> List[Any]:
        """Joins samples split across parts (Sample.continued in loader.proto).

        A sample larger than one message arrives as a first piece (id, key,
        weight, padded, some field bytes) followed by continuation pieces with
        the same id and more bytes of its fields; each field's bytes are the
        concatenation of its slices. Samples that came whole pass through.
        """
        if not any(p.continued for p in pieces):
            return pieces
        out: List[Any] = []
        k = 0
        while k < len(pieces):
            first = pieces[k]
            if first.continued:
                raise SadpError(
                    "SADP_LOADER_PROTOCOL",
                    f"{self._what}: batch {index}: continuation of sample id {first.id} without its first piece",
                    grpc.StatusCode.INTERNAL,
                )
            end = k + 1
            while end < len(pieces) and pieces[end].continued:
                if pieces[end].id != first.id:
                    raise SadpError(
                        "SADP_LOADER_PROTOCOL",
                        f"{self._what}: batch {index}: continuation of sample id {pieces[end].id} "
                        f"follows sample id {first.id}",
                        grpc.StatusCode.INTERNAL,
                    )
                end += 1
            if end == k + 1:
                out.append(first)
            else:
                chunks: Dict[str, List[bytes]] = {}
                for piece in pieces[k:end]:
                    for f, data in piece.fields.items():
                        chunks.setdefault(f, []).append(data)
                out.append(
                    _JoinedSample(
                        id=first.id,
                        key=first.key,
                        weight=first.weight,
                        padded=first.padded,
                        fields={f: b"".join(parts) for f, parts in chunks.items()},
                    )
                )
            k = end
        return out
