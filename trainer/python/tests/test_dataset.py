"""SadpIterableDataset: decoded tensors, DataLoader use, exact mid-epoch resume."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sadp_loader import SadpError, SadpIterableDataset, create_loader_client


def pixels(i: int) -> np.ndarray:
    # The harness's sample i: pixel p = (37 i + 11 p) mod 256, 8 x 8.
    return np.array([(i * 37 + p * 11) % 256 for p in range(64)], dtype=np.uint8).reshape(8, 8)


def test_batches_decode_per_field(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    with create_loader_client(address=loader_address, token=token) as client:
        ds = SadpIterableDataset(client, job, batch_size=12, rank=0, world_size=1)
        loader = DataLoader(ds, batch_size=None)
        batch = next(iter(loader))
        ids = batch["ids"].tolist()
        assert batch["ids"].dtype == torch.long and batch["weights"].dtype == torch.float32
        assert batch["padded"].dtype == torch.bool and batch["weights"].shape == (12,)
        assert batch["cls"].tolist() == [i % 10 for i in ids]  # cls -> int
        assert batch["npy"].shape == (12, 8, 8) and batch["npy"].dtype == torch.uint8  # npy -> array
        assert batch["png"].shape == (12, 8, 8)  # png -> pixels via PIL
        for j, i in enumerate(ids):
            assert np.array_equal(batch["npy"][j].numpy(), pixels(i))
            assert np.array_equal(batch["png"][j].numpy(), pixels(i))
        assert batch["bin"] == [f"raw-{i}".encode() for i in ids]  # unknown -> raw bytes
        assert batch["keys"] == [f"{i:06d}" for i in ids]


def test_custom_decoder_and_field_selection(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    with create_loader_client(address=loader_address, token=token) as client:
        ds = SadpIterableDataset(client, job, 8, rank=0, world_size=1, fields=["bin"], decoders={"bin": lambda b: b.decode()})
        batch = next(iter(ds))
        assert set(batch) == {"index", "epoch", "ids", "weights", "padded", "keys", "bin"}
        assert batch["bin"] == [f"raw-{i}" for i in batch["ids"].tolist()]


def test_state_dict_resumes_mid_epoch_exactly(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    seen = []
    with create_loader_client(address=loader_address, token=token) as client:
        ds = SadpIterableDataset(client, job, 10, rank=0, world_size=1, fields=["cls"])
        it = iter(DataLoader(ds, batch_size=None))
        for _ in range(4):
            b = next(it)
            seen += b["ids"].tolist()
            ds.ack(b, scores=torch.full((len(b["ids"]),), 3.0), losses=torch.ones(len(b["ids"])))
        state = ds.state_dict()
        del it  # the process "dies" here
    assert state["epoch"] == 0 and state["cursor"] == 4 and not state["completed"]

    with create_loader_client(address=loader_address, token=token) as client:
        ds2 = SadpIterableDataset(client, job, 10, rank=0, world_size=1, fields=["cls"])
        ds2.load_state_dict(state)
        ds2.set_epoch(0)  # same epoch: keeps the position
        indexes = []
        for b in DataLoader(ds2, batch_size=None):
            indexes.append(b["index"])
            seen += b["ids"].tolist()
            ds2.ack(b, scores=torch.full((len(b["ids"]),), 3.0))
        assert indexes[0] == 4
        assert ds2.state_dict()["completed"]
    plan_ids, _ = scorer.plan(job, 0)
    assert Counter(seen) == Counter(plan_ids), "nothing lost or repeated across the restart"
    assert scorer.describe(job).scored_examples == len(plan_ids), "scores of both processes arrived"


def test_state_of_another_job_is_refused(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    with create_loader_client(address=loader_address, token=token) as client:
        ds = SadpIterableDataset(client, job, 10, rank=0, world_size=1)
        state = dict(ds.state_dict(), batch_size=11)
        with pytest.raises(SadpError) as e:
            ds.load_state_dict(state)
        assert e.value.code == "SADP_STATE_MISMATCH"


def test_rank_and_world_size_come_from_the_environment(monkeypatch, loader_address):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    ds = SadpIterableDataset(loader_address, "job", 8)
    assert (ds.rank, ds.world_size) == (2, 4)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(SadpError, match="rank 4"):
        SadpIterableDataset(loader_address, "job", 8)


def test_dataloader_worker_processes_are_refused_with_a_reason(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    ds = SadpIterableDataset(loader_address, job, 8, rank=0, world_size=1, token=token)
    # torch re-raises a worker's exception as RuntimeError carrying its text.
    with pytest.raises((SadpError, RuntimeError), match="SADP_DATALOADER_WORKERS"):
        next(iter(DataLoader(ds, batch_size=None, num_workers=1)))


def test_moving_to_the_next_epoch_flushes_the_loaded_states_pending_scores(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    with create_loader_client(address=loader_address, token=token) as client:
        stream = client.epoch(job, 0, 0, 1, 10)
        first = next(iter(stream))  # received, never acked: no score reached the loader
        stream.close()
        ids = list(first.ids)
        assert scorer.describe(job).scored_examples == 0
        ds = SadpIterableDataset(client, job, 10, rank=0, world_size=1)
        state = dict(ds.state_dict(), cursor=1, pending_acks=[{"index": 0, "ids": ids, "scores": [5.0] * len(ids), "losses": None}])
        ds.load_state_dict(state)
        ds.set_epoch(1)
        assert ds.state_dict()["pending_acks"] == [] and ds.state_dict()["cursor"] == 0
    assert scorer.describe(job).scored_examples == len(ids)
