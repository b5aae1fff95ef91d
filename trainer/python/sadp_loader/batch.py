"""What a trainer receives: one batch (ids, weights, padding flags, raw member
bytes per field) and the epoch's info; and the ack records kept for resending."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from .errors import invalid_argument

__all__ = ["EpochInfo", "Batch", "AckRecord"]


@dataclass(frozen=True)
class EpochInfo:
    """The shape of one epoch for this rank (``EpochInfo`` on the wire)."""

    job_id: str
    epoch: int
    dataset_size: int
    #: Examples selected by the plan, before padding.
    selected_count: int
    samples_per_rank: int
    #: Batches every rank receives this epoch.
    steps: int
    padded: int
    #: r_k and S_k of this epoch.
    prune_ratio: float
    expected_size: float
    plan_digest: str
    fields: List[str]
    dataset_bytes: int
    selected_bytes: int
    #: K, the job's number of epochs.
    epochs: int

    @staticmethod
    def from_proto(m: Any) -> "EpochInfo":
        return EpochInfo(
            job_id=m.job_id,
            epoch=m.epoch,
            dataset_size=m.dataset_size,
            selected_count=m.selected_count,
            samples_per_rank=m.samples_per_rank,
            steps=m.steps,
            padded=m.padded,
            prune_ratio=m.prune_ratio,
            expected_size=m.expected_size,
            plan_digest=m.plan_digest,
            fields=list(m.fields),
            dataset_bytes=int(m.dataset_bytes),
            selected_bytes=int(m.selected_bytes),
            epochs=m.epochs,
        )


@dataclass(frozen=True)
class AckRecord:
    """An ack as kept for resending: ids of the non-padded samples and their values."""

    index: int
    ids: List[int]
    scores: Optional[List[float]]
    losses: Optional[List[float]]

    def to_dict(self) -> Dict[str, Any]:
        return {"index": self.index, "ids": list(self.ids), "scores": self.scores, "losses": self.losses}

    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "AckRecord":
        return AckRecord(
            index=int(d["index"]),
            ids=[int(x) for x in d["ids"]],
            scores=None if d.get("scores") is None else [float(x) for x in d["scores"]],
            losses=None if d.get("losses") is None else [float(x) for x in d["losses"]],
        )


def _as_list(values: Any) -> List[float]:
    if hasattr(values, "detach"):  # torch.Tensor
        values = values.detach().cpu()
    if hasattr(values, "tolist"):  # torch.Tensor, numpy.ndarray
        values = values.tolist()
    return [float(v) for v in values]


@dataclass
class Batch:
    """One batch of one rank's epoch.

    ``fields[ext][j]`` is the member bytes of sample j for that extension
    (``b""`` when sample j has no such member). Multiply each sample's loss by
    ``weights[j]``. ``padded[j]`` marks a repeat added so every rank gets the
    same number of steps: train on it; its score is not reported.
    """

    index: int
    ids: List[int]
    keys: List[str]
    weights: List[float]
    padded: List[bool]
    fields: Dict[str, List[bytes]]
    info: EpochInfo
    _ack: Callable[["Batch", Optional[Sequence[float]], Optional[Sequence[float]]], None] = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        return sum(len(b) for values in self.fields.values() for b in values)

    def ack(self, scores: Optional[Sequence[float]] = None, losses: Optional[Sequence[float]] = None) -> None:
        """Acknowledges this batch and reports its scores / unweighted losses, one
        value per sample (padded ones included; they are dropped). Calling it
        again replaces the values. A batch never acked is acked without scores
        when the next one is requested. Thread-safe."""
        self._ack(self, scores, losses)


def _check(what: str, values: Any, batch: Batch) -> Optional[List[float]]:
    if values is None:
        return None
    vals = _as_list(values)
    if len(vals) == 0:
        return None
    if len(vals) != batch.size:
        raise invalid_argument("SADP_ACK_INVALID", f"ack of batch {batch.index}: {len(vals)} {what} for {batch.size} samples")
    out: List[float] = []
    for j, v in enumerate(vals):
        if batch.padded[j]:
            continue
        if not math.isfinite(v) or v < 0:
            # The rule and code of common/scores.ts on the TypeScript side.
            raise invalid_argument(
                "SADP_SCORE_INVALID",
                f"ack of batch {batch.index}: {what} of sample id {batch.ids[j]} (key {batch.keys[j]}) = {v} "
                "must be a finite number >= 0",
            )
        out.append(v)
    return out


def to_ack_record(batch: Batch, scores: Any, losses: Any) -> AckRecord:
    """Validates a report and keeps only the non-padded samples."""
    s = _check("scores", scores, batch)
    l = _check("losses", losses, batch)  # noqa: E741
    ids = [i for i, p in zip(batch.ids, batch.padded) if not p] if (s is not None or l is not None) else []
    return AckRecord(index=batch.index, ids=ids, scores=s, losses=l)
