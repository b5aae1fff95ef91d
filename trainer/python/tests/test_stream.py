"""Streaming an epoch through the client against the real loader: order,
exactly-once across a dropped connection, scores that survive it."""

from __future__ import annotations

from collections import Counter

import grpc
import pytest

from sadp_loader import ClientOptions, ReconnectOptions, SadpError, create_loader_client


def test_epoch_streams_the_plan_in_batches_with_weights(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    with create_loader_client(address=loader_address, token=token) as client:
        stream = client.epoch(job, 0, rank=0, world_size=1, batch_size=16)
        seen = []
        indexes = []
        for batch in stream:
            indexes.append(batch.index)
            assert batch.size == len(batch.weights) == len(batch.keys)
            assert all(w > 0 for w in batch.weights)
            assert not any(batch.padded)  # one rank: no padding
            seen += list(zip(batch.ids, batch.weights))
        info = stream.info
    plan_ids, plan_weights = scorer.plan(job, 0)
    assert info is not None and info.selected_count == len(plan_ids) and info.steps == len(indexes)
    assert indexes == list(range(info.steps))
    assert sorted(seen) == sorted(zip(plan_ids, plan_weights))
    assert stream.cursor == info.steps


def test_dropped_connection_resumes_at_the_cursor_with_nothing_lost_or_repeated(loader_address, scorer, small, drop_proxy):
    job, token = scorer.create_job(small["url"], small["size"])
    proxy = drop_proxy()
    options = ClientOptions(address=proxy.address, token=token, reconnect=ReconnectOptions(base_delay_ms=20, max_delay_ms=200))
    ids = []
    with create_loader_client(options) as client:
        stream = client.epoch(job, 0, rank=0, world_size=1, batch_size=8)
        for batch in stream:
            ids += batch.ids
            batch.ack(scores=[1.0 + (i % 7) for i in batch.ids], losses=[0.5] * batch.size)
            if batch.index in (2, 9):
                proxy.drop_all()  # cut every TCP connection mid-epoch
        assert stream.stats.reopens >= 2
        assert proxy.accepted >= 3
    plan_ids, _ = scorer.plan(job, 0)
    assert Counter(ids) == Counter(plan_ids), "every selected sample exactly once"
    # Every acked score reached the scorer, including those in flight at a drop.
    assert scorer.describe(job).scored_examples == len(plan_ids)


def test_resume_from_a_cursor_and_resend_acks(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    with create_loader_client(address=loader_address, token=token) as client:
        first = client.epoch(job, 0, 0, 1, 10)
        got = []
        it = iter(first)
        for _ in range(3):
            b = next(it)
            got += b.ids
            b.ack(scores=[2.0] * b.size)
        cursor = first.cursor
        pending = first.pending_acks()
        first.close()
        rest = client.epoch(job, 0, 0, 1, 10, cursor=cursor, resend_acks=pending)
        indexes = []
        for b in rest:
            indexes.append(b.index)
            got += b.ids
            b.ack(scores=[2.0] * b.size)
        assert indexes[0] == 3
        assert rest.pending_acks() == []
    plan_ids, _ = scorer.plan(job, 0)
    assert Counter(got) == Counter(plan_ids)
    assert scorer.describe(job).scored_examples == len(plan_ids)


def test_ack_values_are_checked_naming_the_sample(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    with create_loader_client(address=loader_address, token=token) as client:
        stream = client.epoch(job, 0, 0, 1, 4)
        batch = next(iter(stream))
        with pytest.raises(SadpError) as e:
            batch.ack(scores=[1.0, float("nan"), 1.0, 1.0])
        assert e.value.code == "SADP_SCORE_INVALID" and e.value.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
        assert f"id {batch.ids[1]}" in str(e.value)
        with pytest.raises(SadpError, match="3 scores for 4 samples"):
            batch.ack(scores=[1.0, 1.0, 1.0])
        stream.close()


def test_epoch_stream_is_iterated_once(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    with create_loader_client(address=loader_address, token=token) as client:
        stream = client.epoch(job, 0, 0, 1, 64)
        for _ in stream:
            pass
        with pytest.raises(SadpError) as e:
            iter(stream)
        assert e.value.code == "SADP_EPOCH_STREAM_REUSED"


def test_epoch_info_matches_the_stream(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    with create_loader_client(address=loader_address, token=token) as client:
        info = client.epoch_info(job, 0, world_size=3, batch_size=7)
        assert info.samples_per_rank * 3 == info.selected_count + info.padded
        assert info.steps == -(-info.samples_per_rank // 7)
        assert set(info.fields) >= {"cls", "npy", "png", "bin"}
