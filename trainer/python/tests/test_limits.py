"""A sample larger than gRPC's 4 MiB default arrives with the client's defaults.

The loader splits a sample larger than its part cap (3 MiB) across parts
(Sample.continued); the SDK joins the pieces, so even a client held to gRPC's
4 MiB default receives it, and only a limit under the part cap fails.
"""

from __future__ import annotations

import hashlib

import grpc
import pytest

from conftest import env
from sadp_loader import ClientOptions, SadpError, create_loader_client
from sadp_loader._proto.sadp.v1 import scorer_pb2


def test_a_sample_over_4_mib_arrives_with_default_settings(loader_address, scorer):
    job, token = scorer.create_job(env("SADP_TEST_BIG_URL"), 6, policy=scorer_pb2.POLICY_FULL)
    big_id = int(env("SADP_TEST_BIG_ID"))
    got = {}
    with create_loader_client(address=loader_address, token=token) as client:
        for batch in client.epoch(job, 0, 0, 1, 6):
            for j, i in enumerate(batch.ids):
                got[i] = batch.fields["bin"][j]
    assert sorted(got) == list(range(6))
    big = got[big_id]
    assert len(big) == int(env("SADP_TEST_BIG_BYTES")) > 4 * 1024 * 1024
    assert hashlib.sha256(big).hexdigest() == env("SADP_TEST_BIG_SHA256")


def _collect(opts, job):
    got = {}
    with create_loader_client(opts) as client:
        for batch in client.epoch(job, 0, 0, 1, 6):
            for j, i in enumerate(batch.ids):
                got[i] = batch.fields["bin"][j]
    return got


def test_an_explicit_4_mib_limit_still_gets_the_big_sample_whole(loader_address, scorer):
    job, token = scorer.create_job(env("SADP_TEST_BIG_URL"), 6, policy=scorer_pb2.POLICY_FULL)
    opts = ClientOptions(address=loader_address, token=token, max_receive_message_bytes=4 * 1024 * 1024)
    got = _collect(opts, job)
    assert sorted(got) == list(range(6))
    assert hashlib.sha256(got[int(env("SADP_TEST_BIG_ID"))]).hexdigest() == env("SADP_TEST_BIG_SHA256")


def test_a_limit_under_the_part_cap_fails_at_once_naming_resource_exhausted(loader_address, scorer):
    job, token = scorer.create_job(env("SADP_TEST_BIG_URL"), 6, policy=scorer_pb2.POLICY_FULL)
    opts = ClientOptions(address=loader_address, token=token, max_receive_message_bytes=1024 * 1024)
    with pytest.raises(SadpError) as e:
        _collect(opts, job)
    assert e.value.grpc_code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.value.code == "SADP_LOADER_RESOURCE_EXHAUSTED"
