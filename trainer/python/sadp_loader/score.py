"""The spike-aware importance score (SADP, arXiv 2510.04098, Eq. 31-38) from the
forward and backward pass that training already does.

For a layer y = W o (``nn.Linear``, applied per time step or to a [T, B, F]
sequence), example i's weight gradient is sum_t delta_i[t] o_i[t]^T with
delta_i[t] = d loss_i / d y_i[t], the error at the layer's pre-activation (the
LIF input current). Its norm is bounded by

    G_i = sum_t ||delta_i[t]||_2 * ||o_i[t]||_2

which needs no per-example gradient: a forward hook records ||o_i[t]||, a hook
on the output tensor records ||delta_i[t]|| during ``backward()``. Sparse input
spikes make G_i cheap and tight.

The score must be that of the *unweighted* per-example loss: with the usual
``(loss_i * w_i).mean()`` the captured delta_i carries w_i / B, which
``scores(weights=w)`` divides out (``batch_mean=False`` for a sum).
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Union

import torch
from torch import nn

__all__ = ["SpikeAwareScore"]


class SpikeAwareScore:
    """Hooks one or more layers (default: pass the final ``nn.Linear``) and
    accumulates G_i over every time step (every call of the layer, or the time
    dimension of a sequence input) until ``scores()`` pops the result.

    ``batch_dim``: where the batch is in the layer's input: 0 for [B, F] per
    step (snnTorch loops, plain PyTorch) and for [B, T, F]; 1 for time-major
    [T, B, F] (spikingjelly multi-step). Default: 0 for 2-D inputs, 1 otherwise.
    Only input features (the last dimension) enter the norms: the bound holds
    for any layer whose per-position weight gradient is an outer product
    (Linear, and spikingjelly's ``layer.Linear`` / snnTorch's ``nn.Linear``).
    """

    def __init__(self, layers: Union[nn.Module, Sequence[nn.Module]], batch_dim: Optional[int] = None) -> None:
        mods: List[nn.Module] = [layers] if isinstance(layers, nn.Module) else list(layers)
        if not mods:
            raise ValueError("SpikeAwareScore needs at least one layer")
        self.batch_dim = batch_dim
        self.enabled = True
        self._acc: Optional[torch.Tensor] = None
        self._handles = [m.register_forward_hook(self._on_forward) for m in mods]

    def _per_example(self, x: torch.Tensor) -> torch.Tensor:
        """||.||_2 over the last dim, then the batch dim moved first: [B, rest]."""
        n = x.detach().float().norm(dim=-1)
        if n.dim() == 0:
            return n.reshape(1, 1)
        bd = self.batch_dim if self.batch_dim is not None else (0 if x.dim() == 2 else 1)
        return n.movedim(bd, 0).reshape(n.shape[bd], -1)

    def _on_forward(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not self.enabled or not torch.is_grad_enabled() or not isinstance(output, torch.Tensor) or not output.requires_grad:
            return
        o_norm = self._per_example(inputs[0])

        def on_grad(grad: torch.Tensor) -> None:
            g = (self._per_example(grad) * o_norm).sum(dim=1)
            self._acc = g if self._acc is None else self._acc + g

        output.register_hook(on_grad)

    def scores(self, weights: Optional[Union[torch.Tensor, Iterable[float]]] = None, batch_mean: bool = True) -> torch.Tensor:
        """The scores G_i of the batch since the last call (then reset), one per
        example, for the unweighted loss. ``weights``: the importance weights the
        losses were multiplied by; ``batch_mean``: the loss was a mean over the
        batch (divide out 1/B too)."""
        acc = self._acc
        self._acc = None
        if acc is None:
            raise RuntimeError("SpikeAwareScore: no backward pass through the hooked layers since the last scores()")
        g = acc
        if batch_mean:
            g = g * g.shape[0]
        if weights is not None:
            w = torch.as_tensor(weights, dtype=g.dtype, device=g.device).reshape(-1)
            if w.shape[0] != g.shape[0]:
                raise ValueError(f"SpikeAwareScore: {w.shape[0]} weights for {g.shape[0]} examples")
            if bool((w <= 0).any()):
                raise ValueError("SpikeAwareScore: importance weights must be > 0")
            g = g / w
        return g

    def reset(self) -> None:
        """Drops what was captured (e.g. after a pass you will not report)."""
        self._acc = None

    def remove(self) -> None:
        """Unregisters the hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []
