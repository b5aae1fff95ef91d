#!/usr/bin/env python3
"""Does SpikeAwareScore track the exact per-example gradient norm? The Python
twin of `npm run validate:score` (bench/validate-score.ts): on a fixed probe of
Fashion-MNIST training examples, at several points of training a spiking MLP
(784 -> 128 LIF -> 10 readout, T = 4, the example's model), compare the score
taken from a batched training pass (no extra backward pass) against the exact
norm (one backward pass per example), for the readout layer and for all
layers, and against the loss. Prints a table and, with --out, writes JSON.

    npm run validate:score:python [-- --quick] [-- --out score-python.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from sadp_loader import SpikeAwareScore  # noqa: E402
from train_fmnist import FMNIST, SpikingMlp, read_idx  # noqa: E402

BATCH = 64


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return pearson(np.argsort(np.argsort(a)).astype(float), np.argsort(np.argsort(b)).astype(float))


def probe(model: SpikingMlp, x: torch.Tensor, y: torch.Tensor) -> dict:
    layers = {"output": [model.readout], "all": [model.fc1, model.readout]}
    scores = {k: SpikeAwareScore(v, batch_dim=None) for k, v in layers.items()}
    # The readout sees [T, B, H] (time-major), fc1 sees [B, 784].
    scores["output"].batch_dim = 1
    got = {k: [] for k in layers}
    losses = []
    spikes_zero = []
    hidden = {}
    hook = model.lif.register_forward_hook(lambda m, i, o: hidden.__setitem__("s", o.detach()))
    for i in range(0, len(y), BATCH):
        model.zero_grad()
        loss_i = nn.functional.cross_entropy(model(x[i : i + BATCH]), y[i : i + BATCH], reduction="none")
        loss_i.mean().backward()
        for k in layers:
            got[k].append(scores[k].scores().numpy())
        losses.append(loss_i.detach().numpy())
        spikes_zero.append((hidden["s"] == 0).float().mean().item())
    hook.remove()
    for s in scores.values():
        s.remove()
    exact = {"output": [], "all": []}
    for i in range(len(y)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        g_out = model.readout.weight.grad.norm().item()
        g_in = model.fc1.weight.grad.norm().item()
        exact["output"].append(g_out)
        exact["all"].append((g_out**2 + g_in**2) ** 0.5)
    model.zero_grad()
    loss = np.concatenate(losses)
    out = {"sparsity": float(np.mean(spikes_zero))}
    for k in layers:
        s = np.concatenate(got[k])
        e = np.array(exact[k])
        out[k] = {
            "score": {"pearson": pearson(s, e), "spearman": spearman(s, e)},
            "loss": {"pearson": pearson(loss, e), "spearman": spearman(loss, e)},
            "score_below_exact": int(np.sum(s < e * (1 - 1e-4))),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    probe_n, subset, checkpoints = (256, 2000, [0, 1]) if args.quick else (512, 6000, [0, 1, 3])
    torch.manual_seed(1)
    torch.set_num_threads(2)
    load = os.getloadavg()
    images = torch.from_numpy(read_idx(f"{FMNIST}/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255)
    labels = torch.from_numpy(read_idx(f"{FMNIST}/train-labels-idx1-ubyte.gz").astype(np.int64))
    test_x = torch.from_numpy(read_idx(f"{FMNIST}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32)[:2000] / 255)
    test_y = torch.from_numpy(read_idx(f"{FMNIST}/t10k-labels-idx1-ubyte.gz").astype(np.int64)[:2000])
    perm = torch.randperm(len(labels))
    probe_idx, train_idx = perm[:probe_n], perm[probe_n : probe_n + subset]
    model = SpikingMlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows = []
    epoch = 0
    start = time.monotonic()
    print("model @ epoch | test acc | readout input sparsity | score, output layer | loss, output layer | score, all layers | loss, all layers")
    for cp in checkpoints:
        while epoch < cp:
            order = train_idx[torch.randperm(len(train_idx))]
            for i in range(0, len(order), BATCH):
                b = order[i : i + BATCH]
                loss = nn.functional.cross_entropy(model(images[b]), labels[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
            epoch += 1
        with torch.no_grad():
            acc = (model(test_x).argmax(1) == test_y).float().mean().item()
        r = probe(model, images[probe_idx], labels[probe_idx])
        r.update({"epoch": cp, "test_acc": acc})
        rows.append(r)
        f = lambda c: f"{c['pearson']:.3f} ({c['spearman']:.3f})"  # noqa: E731
        print(
            f"MLP @{cp} | {acc:.3f} | {r['sparsity']:.3f} | {f(r['output']['score'])} | {f(r['output']['loss'])} | "
            f"{f(r['all']['score'])} | {f(r['all']['loss'])}",
            flush=True,
        )
        below = r["output"]["score_below_exact"] + r["all"]["score_below_exact"]
        print(f"  score below the exact norm for {below} probe examples (the score is an upper bound)")
    result = {
        "command": "npm run validate:score:python" + (" -- --quick" if args.quick else ""),
        "probe": probe_n,
        "train_subset": subset,
        "rows": rows,
        "seconds": time.monotonic() - start,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(), "loadavg_start": load, "loadavg_end": os.getloadavg()},
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
