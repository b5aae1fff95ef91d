"""Fixtures for the SDK tests. The services are started by
test/trainer/python/python-sdk.test.ts (`npm test`), which passes their addresses in
SADP_TEST_* variables. Run alone, the tests that need services fail (they are
never skipped: CI must not pass without running them)."""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import threading
from typing import Callable, Dict, List, Optional, Tuple

import grpc
import pytest

from sadp_loader._proto.sadp.v1 import scorer_pb2, scorer_pb2_grpc

_counter = itertools.count()


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"${name} is not set: run these tests through `npm test` (test/trainer/python/python-sdk.test.ts)")
    return value


class Scorer:
    """Job administration over the scorer's own gRPC API (the generated stubs)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.stub = scorer_pb2_grpc.ScorerStub(channel)

    def create_job(
        self,
        dataset_url: str,
        size: int,
        policy: int = scorer_pb2.POLICY_SADP,
        prune_ratio: float = 0.5,
        epochs: int = 3,
        seed: int = 11,
        token: Optional[str] = None,
    ) -> Tuple[str, str]:
        job = f"py-{os.getpid()}-{next(_counter)}"
        token = token or secrets.token_hex(16)
        self.stub.CreateJob(
            scorer_pb2.CreateJobRequest(
                spec=scorer_pb2.JobSpec(
                    job_id=job,
                    dataset_size=size,
                    policy=policy,
                    prune_ratio=prune_ratio,
                    epochs=epochs,
                    seed=seed,
                    dataset_url=dataset_url,
                    token=token,
                )
            ),
            timeout=60,
        )
        return job, token

    def plan(self, job: str, epoch: int) -> Tuple[List[int], List[float]]:
        ids: List[int] = []
        weights: List[float] = []
        for chunk in self.stub.GetPlan(scorer_pb2.GetPlanRequest(job_id=job, epoch=epoch), timeout=60):
            ids.extend(chunk.ids)
            weights.extend(chunk.weights)
        return ids, weights

    def describe(self, job: str) -> scorer_pb2.Job:
        return self.stub.DescribeJob(scorer_pb2.DescribeJobRequest(job_id=job), timeout=60)


@pytest.fixture(scope="session")
def loader_address() -> str:
    return env("SADP_TEST_LOADER")


@pytest.fixture(scope="session")
def scorer() -> Scorer:
    ch = grpc.insecure_channel(env("SADP_TEST_SCORER"))
    yield Scorer(ch)
    ch.close()


@pytest.fixture(scope="session")
def small() -> Dict[str, object]:
    return {"url": env("SADP_TEST_SMALL_URL"), "size": int(env("SADP_TEST_SMALL_SIZE"))}


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class DropProxy:
    """A TCP relay in front of the loader whose connections the test can cut
    (the fault a dead network path or a killed pod causes)."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.lock = threading.Lock()
        self.sockets: List[socket.socket] = []
        self.accepted = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.accepted += 1
                self.sockets += [client, up]
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop_all(self) -> None:
        with self.lock:
            socks, self.sockets = self.sockets, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.closed = True
        self.server.close()
        self.drop_all()


@pytest.fixture
def drop_proxy(loader_address: str) -> Callable[[], DropProxy]:
    proxies: List[DropProxy] = []

    def make() -> DropProxy:
        p = DropProxy(loader_address)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.close()
