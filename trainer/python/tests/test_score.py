"""SpikeAwareScore against hand-computed values and the exact per-example gradient."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sadp_loader import LIF, SpikeAwareScore


def test_linear_layer_per_step_equals_the_hand_computed_value():
    # y_i[t] = W o_i[t]; loss_i = sum_t c . y_i[t]  =>  delta_i[t] = c for every t,
    # so G_i = ||c|| * sum_t ||o_i[t]|| with ||c|| = ||(3, 4)|| = 5.
    fc = nn.Linear(2, 2, bias=False)
    score = SpikeAwareScore(fc)
    c = torch.tensor([3.0, 4.0])
    o = [torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[1.0, 1.0], [0.0, 2.0]])]  # [T][B, F]
    per_example = sum((fc(o_t) * c).sum(dim=1) for o_t in o)
    per_example.sum().backward()
    g = score.scores(batch_mean=False)
    assert g.tolist() == pytest.approx([5 * (1 + math.sqrt(2)), 5 * 2])


def test_importance_weights_and_the_batch_mean_are_divided_out():
    fc = nn.Linear(2, 2, bias=False)
    score = SpikeAwareScore(fc)
    c = torch.tensor([3.0, 4.0])
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [0.0, 0.0]]])  # [T=2, B=2, F] time-major
    w = torch.tensor([0.5, 4.0])
    loss_i = (fc(x) * c).sum(dim=(0, 2))
    (loss_i * w).mean().backward()
    g = score.scores(weights=w)  # the weighted mean's w_i / B divided out
    assert g.tolist() == pytest.approx([5 * (1 + math.sqrt(2)), 5 * 2])


def test_spiking_network_score_matches_per_step_autograd_and_bounds_the_gradient():
    torch.manual_seed(0)
    T, B = 4, 5
    fc1, lif, fc2 = nn.Linear(6, 8), LIF(decay=0.5, threshold=0.5), nn.Linear(8, 3, bias=False)
    score = SpikeAwareScore(fc2)
    x = torch.rand(T, B, 6) * 2
    target = torch.randint(0, 3, (B,))
    spikes = lif(fc1(x))  # [T, B, 8]
    y = fc2(spikes)  # [T, B, 3]
    y.retain_grad()
    loss_i = nn.functional.cross_entropy(y.mean(0), target, reduction="none")
    loss_i.mean().backward()
    g = score.scores()
    # Reference: per-step errors from autograd (the mean's 1/B removed).
    delta = y.grad * B
    ref = (delta.norm(dim=2) * spikes.detach().norm(dim=2)).sum(0)
    assert g.tolist() == pytest.approx(ref.tolist(), rel=1e-5)
    assert spikes.sum() > 0, "the LIF layer fired"
    # Upper bound on the exact per-example gradient norm of fc2.weight.
    for i in range(B):
        fc2.weight.grad = None
        yi = fc2(spikes[:, i : i + 1].detach())
        nn.functional.cross_entropy(yi.mean(0), target[i : i + 1]).backward()
        assert fc2.weight.grad.norm().item() <= g[i].item() + 1e-5


def test_lif_fires_and_resets():
    lif = LIF(decay=1.0, threshold=1.0)
    out = lif(torch.full((4, 1, 1), 0.6))  # u: 0.6, 1.2 -> spike, 0.8, 1.4 -> spike
    assert out.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_no_capture_without_grad_and_scores_reset():
    fc = nn.Linear(2, 1)
    score = SpikeAwareScore(fc)
    with torch.no_grad():
        fc(torch.ones(3, 2))
    with pytest.raises(RuntimeError):
        score.scores()
    fc(torch.ones(3, 2)).sum().backward()
    assert score.scores(batch_mean=False).shape == (3,)
    score.remove()
