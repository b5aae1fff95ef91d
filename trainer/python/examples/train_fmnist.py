#!/usr/bin/env python3
"""A spiking MLP in plain PyTorch trained through the sadp-loader on Fashion-MNIST
shards with SADP: per epoch it prints test accuracy, the subset the loader
streamed, and the bytes the loader fetched from S3 against a full epoch.

    npm run build && /usr/bin/python3 trainer/python/examples/train_fmnist.py --local

``--local`` starts everything from this repository: ``sadp serve`` (embedded S3,
scorer, loader on free ports), writes the first ``--train-limit`` Fashion-MNIST
training images as WebDataset shards (Debian package dataset-fashion-mnist)
and creates an SADP job. Without it, point it at running services:

    train_fmnist.py --loader HOST:PORT --job JOB --token T [--metrics http://HOST:PORT/metrics]

The model: 784 -> 128 LIF -> 10 (a non-spiking readout averaged over T = 4
steps), Adam; the loss of each example is multiplied by its importance weight,
and the spike-aware score of the readout layer, with the weight divided out,
goes back with every batch's ack.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "trainer" / "python"))

from sadp_loader import LIF, SadpIterableDataset, SpikeAwareScore, create_loader_client  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"
STEPS_T = 4


class SpikingMlp(nn.Module):
    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.lif = LIF(decay=0.5, threshold=1.0)
        self.readout = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = self.fc1(x).unsqueeze(0).expand(STEPS_T, -1, -1)  # direct encoding, [T, B, H]
        spikes = self.lif(current)
        return self.readout(spikes).mean(0)  # [T, B, 10] -> logits


def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fetched_bytes(metrics_url: Optional[str]) -> Optional[float]:
    if not metrics_url:
        return None
    with urllib.request.urlopen(metrics_url, timeout=10) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("sadp_loader_bytes_fetched_total"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sadp(*args: str) -> str:
    return subprocess.run(["node", str(ROOT / "dist/cli/sadp.js"), *args], check=True, capture_output=True, text=True).stdout


def start_local(tmp: str, limit: int, epochs: int, prune_ratio: float) -> Tuple[subprocess.Popen, Dict[str, str]]:
    if not (ROOT / "dist/cli/sadp.js").exists():
        sys.exit("dist/cli/sadp.js is missing: run `npm run build` first")
    metrics_port = free_port()
    proc = subprocess.Popen(
        ["node", str(ROOT / "dist/cli/sadp.js"), "serve", "--embedded-s3", "--s3-port", "0", "--s3-data-dir", f"{tmp}/s3",
         "--bucket", "data", "--scorer-listen", "127.0.0.1:0", "--loader-listen", "127.0.0.1:0", "--state", f"{tmp}/scorer",
         "--metrics-port", str(metrics_port), "--log-level", "error"],
        stdout=subprocess.PIPE, text=True, env={k: v for k, v in os.environ.items() if not k.startswith("SADP_")},
    )  # fmt: skip
    up: Dict[str, Dict] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            msg = json.loads(line)
            if msg.get("event") == "listening":
                up[msg["service"]] = msg
                if msg["service"] == "loader":
                    break
    if "loader" not in up:
        sys.exit("sadp serve exited before listening")
    s3 = ["--endpoint", up["s3"]["endpoint"], "--access-key-id", "S3RVER", "--secret-access-key", "S3RVER"]
    sadp("shards", "build", "--source", "fashion-mnist", "--split", "train", "--input", FMNIST, "--count", str(limit),
         "--out", "s3://data/fmnist/train", "--shard-bytes", "4MiB", *s3)  # fmt: skip
    token = secrets.token_hex(16)
    sadp("scorer", "create-job", "--address", up["scorer"]["address"], "--job", "fmnist-py", "--size", str(limit),
         "--policy", "sadp", "--prune-ratio", str(prune_ratio), "--epochs", str(epochs), "--seed", "1",
         "--dataset", "s3://data/fmnist/train/manifest.json", "--token", token)  # fmt: skip
    return proc, {
        "loader": up["loader"]["address"],
        "job": "fmnist-py",
        "token": token,
        "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
    }


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), 1000):
            correct += (model(images[i : i + 1000]).argmax(1) == labels[i : i + 1000]).sum().item()
    model.train()
    return correct / len(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--local", action="store_true", help="start sadp serve, write shards and create the job")
    ap.add_argument("--loader", help="loader host:port")
    ap.add_argument("--job", help="job id")
    ap.add_argument("--token", default=os.environ.get("SADP_JOB_TOKEN"), help="job bearer token (default $SADP_JOB_TOKEN)")
    ap.add_argument("--metrics", help="the loader's /metrics URL, for the bytes it fetched")
    ap.add_argument("--train-limit", type=int, default=20000, help="--local: training images written (default 20000)")
    ap.add_argument("--epochs", type=int, default=3, help="--local: K; otherwise the job's K is used (default 3)")
    ap.add_argument("--prune-ratio", type=float, default=0.5, help="--local: SADP r (default 0.5)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="sadp-fmnist-py-")
    try:
        if args.local:
            proc, svc = start_local(tmp.name, args.train_limit, args.epochs, args.prune_ratio)
        else:
            if not args.loader or not args.job:
                ap.error("--loader and --job are required without --local")
            svc = {"loader": args.loader, "job": args.job, "token": args.token, "metrics": args.metrics}
        test_x = torch.from_numpy(read_idx(f"{FMNIST}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255)
        test_y = torch.from_numpy(read_idx(f"{FMNIST}/t10k-labels-idx1-ubyte.gz").astype(np.int64))

        model = SpikingMlp()
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        score = SpikeAwareScore(model.readout, batch_dim=1)  # readout input is [T, B, H]
        client = create_loader_client(address=svc["loader"], token=svc["token"])
        ds = SadpIterableDataset(client, svc["job"], args.batch_size, rank=0, world_size=1, fields=["npy", "cls"])
        epochs = client.epoch_info(svc["job"], 0, 1, args.batch_size).epochs
        print("epoch  test acc   loss       subset   fetched  full epoch  saved  samples/s")
        total_fetched = 0.0
        total_full = 0
        for epoch in range(epochs):
            ds.set_epoch(epoch)
            before = fetched_bytes(svc["metrics"])
            start = time.monotonic()
            seen = loss_sum = 0.0
            for batch in ds:
                x = batch["npy"].reshape(-1, 784).float() / 255
                y = batch["cls"]
                w = batch["weights"]
                loss_i = nn.functional.cross_entropy(model(x), y, reduction="none")
                loss = (loss_i * w).mean()  # importance-weighted: unbiased for the full-data mean
                opt.zero_grad()
                loss.backward()
                opt.step()
                ds.ack(batch, scores=score.scores(weights=w), losses=loss_i.detach())
                seen += len(y)
                loss_sum += loss.item() * len(y)
            secs = time.monotonic() - start
            info = ds.info
            assert info is not None
            after = fetched_bytes(svc["metrics"])
            fetched = None if before is None or after is None else after - before
            total_fetched += fetched or 0
            total_full += info.dataset_bytes
            acc = evaluate(model, test_x, test_y)
            fetched_s = f"{fetched / 1e6:7.1f} MB" if fetched is not None else "      ? "
            saved = f"{1 - fetched / info.dataset_bytes:5.0%}" if fetched is not None else "    ?"
            print(
                f"{epoch:5d}  {acc:7.2%}  {loss_sum / seen:.4f}  {info.selected_count:6d}/{info.dataset_size:<6d}"
                f" {fetched_s}  {info.dataset_bytes / 1e6:7.1f} MB  {saved}  {seen / secs:9.0f}",
                flush=True,
            )
        if svc["metrics"]:
            print(f"\n{epochs} epochs: fetched {total_fetched / 1e6:.1f} MB of {total_full / 1e6:.1f} MB full-data bytes "
                  f"({1 - total_fetched / total_full:.1%} never read)")  # fmt: skip
        client.close()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()


if __name__ == "__main__":
    main()
