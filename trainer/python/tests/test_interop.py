"""A Python rank and a TypeScript rank of the same job and epoch."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter

from conftest import env
from sadp_loader import create_loader_client


def test_python_and_typescript_ranks_split_the_plan(loader_address, scorer, small):
    job, token = scorer.create_job(small["url"], small["size"])
    request = {"address": loader_address, "token": token, "job": job, "epoch": 0, "rank": 1, "worldSize": 2, "batchSize": 16}
    ts = subprocess.Popen(
        [*json.loads(env("SADP_TEST_TS_RANK")), json.dumps(request)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SADP_")},
    )
    py_ids, py_padded, py_steps = [], [], 0
    try:
        with create_loader_client(address=loader_address, token=token) as client:
            stream = client.epoch(job, 0, rank=0, world_size=2, batch_size=16)
            for batch in stream:
                py_ids += batch.ids
                py_padded += batch.padded
                py_steps += 1
            digest = stream.info.plan_digest
        out, err = ts.communicate(timeout=600)  # a hang guard only
    finally:
        ts.kill()
    assert ts.returncode == 0, err
    r1 = json.loads(out.strip().splitlines()[-1])
    plan_ids, _ = scorer.plan(job, 0)
    assert r1["planDigest"] == digest
    assert len(py_ids) == len(r1["ids"]) and py_steps == r1["steps"], "equal-length streams"
    real0 = [i for i, p in zip(py_ids, py_padded) if not p]
    real1 = [i for i, p in zip(r1["ids"], r1["padded"]) if not p]
    assert not set(real0) & set(real1), "disjoint"
    assert Counter(real0 + real1) == Counter(plan_ids), "union is the plan, each sample once"
    # Padding only repeats selected samples.
    assert set(py_ids) | set(r1["ids"]) == set(plan_ids)
