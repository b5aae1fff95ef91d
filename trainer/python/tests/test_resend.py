"""Scores acknowledged but not yet committed when a loader dies are resent on the
next stream. A loader that dies between an ack and its commit cannot be made to
do so on cue, so this one fault runs against a scripted in-process loader (real
gRPC over a loopback socket); everything else is tested against the real one."""

from __future__ import annotations

import queue
import threading
from concurrent import futures
from typing import Dict, List

import grpc

from sadp_loader import ClientOptions, ReconnectOptions, create_loader_client
from sadp_loader._proto.sadp.v1 import loader_pb2, loader_pb2_grpc

STEPS = 6
BATCH = 2


def batch(index: int) -> loader_pb2.StreamEpochResponse:
    samples = [loader_pb2.Sample(id=index * BATCH + j, key=f"{index * BATCH + j:06d}", weight=1.0) for j in range(BATCH)]
    return loader_pb2.StreamEpochResponse(batch=loader_pb2.BatchPart(index=index, part=0, parts=1, samples=samples))


class ScriptedLoader(loader_pb2_grpc.LoaderServicer):
    """Stream 1 never commits and dies after the ack of batch 2; later streams
    commit every ack as it arrives and end once the last batch is acked."""

    def __init__(self) -> None:
        self.streams = 0
        self.acks: List[Dict[str, object]] = []
        self.lock = threading.Lock()

    def StreamEpoch(self, request_iterator, context):
        with self.lock:
            self.streams += 1
            n = self.streams
        first = next(request_iterator)
        cursor = first.open.cursor
        info = loader_pb2.EpochInfo(job_id="j", epoch=0, dataset_size=STEPS * BATCH, selected_count=STEPS * BATCH,
                                    samples_per_rank=STEPS * BATCH, steps=STEPS, plan_digest="d", fields=["cls"])  # fmt: skip
        acks: "queue.Queue[object]" = queue.Queue()

        def read() -> None:
            for r in request_iterator:
                if r.WhichOneof("kind") == "ack":
                    with self.lock:
                        self.acks.append({"stream": n, "index": r.ack.index, "ids": list(r.ack.ids), "scores": list(r.ack.scores)})
                    acks.put(r.ack.index)
            acks.put(None)

        threading.Thread(target=read, daemon=True).start()
        yield loader_pb2.StreamEpochResponse(info=info)
        for i in range(cursor, STEPS):
            yield batch(i)
        if n == 1:
            while acks.get() != 2:
                pass
            context.abort(grpc.StatusCode.UNAVAILABLE, "SADP_LOADER_SHUTDOWN: loader died")
        while True:
            index = acks.get()
            if index is None:
                return
            yield loader_pb2.StreamEpochResponse(committed=loader_pb2.ScoresCommitted(through_index=index))
            if index == STEPS - 1:
                return


def test_acked_scores_not_committed_when_the_loader_dies_are_resent():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    fake = ScriptedLoader()
    loader_pb2_grpc.add_LoaderServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        opts = ClientOptions(address=f"127.0.0.1:{port}", reconnect=ReconnectOptions(base_delay_ms=10, max_delay_ms=50))
        with create_loader_client(opts) as client:
            stream = client.epoch("j", 0, 0, 1, BATCH)
            got = []
            for b in stream:
                got.append(b.index)
                b.ack(scores=[float(b.index) + 0.5] * b.size)
            assert got == list(range(STEPS)), "each batch once, in order"
            assert stream.pending_acks() == [] and stream.committed_through == STEPS - 1
            assert stream.stats.reopens == 1
    finally:
        server.stop(None)
    first = [a["index"] for a in fake.acks if a["stream"] == 1]
    second = {a["index"]: a for a in fake.acks if a["stream"] == 2}
    assert first[:3] == [0, 1, 2]
    for i in (0, 1, 2):  # resent with the same ids and scores
        assert second[i]["ids"] == [i * BATCH, i * BATCH + 1] and second[i]["scores"] == [i + 0.5] * BATCH
    assert fake.streams == 2
