"""Scores reported from Python change the next epoch's plan."""

from __future__ import annotations

from sadp_loader import SadpIterableDataset, create_loader_client


def test_higher_scores_raise_the_selection_rate_of_the_next_epoch(loader_address, scorer, small):
    n = small["size"]
    job, token = scorer.create_job(small["url"], n, prune_ratio=0.5, epochs=3)
    high = lambda i: i % 3 == 0  # noqa: E731
    with create_loader_client(address=loader_address, token=token) as client:
        ds = SadpIterableDataset(client, job, batch_size=16, rank=0, world_size=1, fields=["cls"])
        for batch in ds:
            ids = batch["ids"].tolist()
            ds.ack(batch, scores=[20.0 if high(i) else 0.2 for i in ids])
        plan0, _ = scorer.plan(job, 0)
        assert scorer.describe(job).scored_examples == len(plan0)
        ds.set_epoch(1)
        next_ids = [i for batch in ds for i in batch["ids"].tolist()]
    plan1, _ = scorer.plan(job, 1)
    assert sorted(next_ids) == sorted(plan1)
    scored = set(plan0)
    hi = [i for i in scored if high(i)]
    lo = [i for i in scored if not high(i)]
    rate = lambda group: sum(1 for i in group if i in set(plan1)) / len(group)  # noqa: E731
    assert rate(hi) > rate(lo) + 0.2, (rate(hi), rate(lo))
