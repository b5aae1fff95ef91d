"""Errors a retry cannot fix come out at once as SadpError with the gRPC status
and the loader's stable SADP_* code; TLS and mutual TLS."""

from __future__ import annotations

import grpc
import pytest

from conftest import Scorer, env, read
from sadp_loader import ClientOptions, ReconnectOptions, SadpError, TlsOptions, create_loader_client
from sadp_loader.options import channel_options


def first_batch(options: ClientOptions, job: str):
    with create_loader_client(options) as client:
        stream = client.epoch(job, 0, 0, 1, 8)
        try:
            return next(iter(stream))
        finally:
            stream.close()


def test_wrong_token_is_permission_denied_with_the_loader_code(loader_address, scorer, small):
    job, _ = scorer.create_job(small["url"], small["size"])
    with pytest.raises(SadpError) as e:
        first_batch(ClientOptions(address=loader_address, token="not-the-token"), job)
    err = e.value
    assert err.code == "SADP_LOADER_PERMISSION_DENIED"
    assert err.grpc_code == grpc.StatusCode.PERMISSION_DENIED
    assert err.remote_code == "SADP_PERMISSION_DENIED"
    assert job in err.details
    assert isinstance(err.__cause__, grpc.RpcError)


def test_missing_token_is_unauthenticated(loader_address, scorer, small):
    job, _ = scorer.create_job(small["url"], small["size"])
    with pytest.raises(SadpError) as e:
        first_batch(ClientOptions(address=loader_address), job)
    assert e.value.grpc_code == grpc.StatusCode.UNAUTHENTICATED
    assert e.value.remote_code == "SADP_UNAUTHENTICATED"


def test_wrong_token_on_describe_epoch(loader_address, scorer, small):
    job, _ = scorer.create_job(small["url"], small["size"])
    with create_loader_client(address=loader_address, token="nope") as client:
        with pytest.raises(SadpError) as e:
            client.epoch_info(job, 0, 1, 8)
    assert e.value.code == "SADP_LOADER_PERMISSION_DENIED" and e.value.remote_code == "SADP_PERMISSION_DENIED"


def test_unknown_job_and_epoch_out_of_range(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"], epochs=2)
    with pytest.raises(SadpError) as e:
        first_batch(ClientOptions(address=loader_address, token=token), "no-such-job")
    assert e.value.grpc_code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
    with create_loader_client(address=loader_address, token=token) as client:
        stream = client.epoch(job, 2, 0, 1, 8)
        with pytest.raises(SadpError) as e:
            next(iter(stream))
    assert e.value.grpc_code == grpc.StatusCode.OUT_OF_RANGE and e.value.remote_code is not None


def test_unreachable_loader_exhausts_retries():
    opts = ClientOptions(address="127.0.0.1:1", token="t", reconnect=ReconnectOptions(max_attempts=2, base_delay_ms=10, max_delay_ms=20))
    with pytest.raises(SadpError) as e:
        first_batch(opts, "job")
    assert e.value.code == "SADP_LOADER_RETRIES_EXHAUSTED"
    assert e.value.grpc_code == grpc.StatusCode.UNAVAILABLE


def test_bad_options_are_refused():
    with pytest.raises(SadpError, match="not host:port"):
        create_loader_client(address="localhost")
    with pytest.raises(SadpError, match="deadline_ms"):
        create_loader_client(address="127.0.0.1:5", deadline_ms=0)
    for bad in (0, -1, float("nan")):
        with pytest.raises(SadpError, match="keepalive_timeout_ms must be a positive number") as e:
            create_loader_client(address="127.0.0.1:5", keepalive_timeout_ms=bad)
        assert e.value.code == "SADP_INVALID_OPTION"


def test_keepalive_timeout_reaches_the_channel_options():
    def timeout(**kw):
        return dict(channel_options(ClientOptions(address="127.0.0.1:5", **kw)))["grpc.keepalive_timeout_ms"]

    assert timeout() == 20_000
    assert timeout(keepalive_timeout_ms=4_500) == 4_500
    assert timeout(keepalive_timeout_ms=0.5) == 1, "a fraction of a millisecond rounds up, never to 0"
    # Never longer than the ping interval.
    assert timeout(keepalive_time_ms=10_000, keepalive_timeout_ms=15_000) == 10_000


def _tls_scorer() -> Scorer:
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(env("SADP_TEST_TLS_CA")),
        private_key=read(env("SADP_TEST_TLS_KEY")),
        certificate_chain=read(env("SADP_TEST_TLS_CERT")),
    )
    return Scorer(grpc.secure_channel(env("SADP_TEST_TLS_SCORER"), creds))


def test_mutual_tls(small):
    admin = _tls_scorer()
    try:
        job, token = admin.create_job(small["url"], small["size"])
        plan_ids, _ = admin.plan(job, 0)
    finally:
        admin.channel.close()
    ca = read(env("SADP_TEST_TLS_CA"))
    tls = TlsOptions(ca=ca, cert=read(env("SADP_TEST_TLS_CERT")), key=read(env("SADP_TEST_TLS_KEY")))
    ids = []
    with create_loader_client(address=env("SADP_TEST_TLS_LOADER"), token=token, tls=tls) as client:
        for batch in client.epoch(job, 0, 0, 1, 32):
            ids += batch.ids
    assert sorted(ids) == sorted(plan_ids)

    quick = ReconnectOptions(max_attempts=1)
    # A certificate from another CA, or none, is refused by the loader.
    for cert, key in ((env("SADP_TEST_ROGUE_CERT"), env("SADP_TEST_ROGUE_KEY")), (None, None)):
        bad = TlsOptions(ca=ca, cert=read(cert) if cert else None, key=read(key) if key else None)
        with pytest.raises(SadpError) as e:
            first_batch(ClientOptions(address=env("SADP_TEST_TLS_LOADER"), token=token, tls=bad, reconnect=quick), job)
        assert e.value.grpc_code == grpc.StatusCode.UNAVAILABLE
    # Plaintext against a TLS loader fails too.
    with pytest.raises(SadpError):
        first_batch(ClientOptions(address=env("SADP_TEST_TLS_LOADER"), token=token, reconnect=quick), job)
