"""A plain-PyTorch leaky integrate-and-fire layer with a surrogate gradient.

u[t] = decay * u[t-1] + x[t]; spike s[t] = H(u[t] - threshold); soft reset
u[t] -= threshold * s[t]. The Heaviside step's gradient is replaced by the
derivative of ``atan`` (default) or a sigmoid in the backward pass. Input and
output are time-major: [T, B, ...] (spikingjelly's multi-step layout).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LIF", "spike"]


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v: torch.Tensor, alpha: float, kind: str) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        ctx.alpha = alpha
        ctx.kind = kind
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (v,) = ctx.saved_tensors
        a = ctx.alpha
        if ctx.kind == "sigmoid":
            sg = torch.sigmoid(a * v)
            d = a * sg * (1 - sg)
        else:  # atan: d/dv (1/pi) atan(pi/2 a v) + 1/2
            d = (a / 2) / (1 + (math.pi / 2 * a * v) ** 2)
        return grad * d, None, None


def spike(v: torch.Tensor, alpha: float = 2.0, surrogate: str = "atan") -> torch.Tensor:
    """Heaviside(v) forward, surrogate gradient backward."""
    return _Spike.apply(v, alpha, surrogate)


class LIF(nn.Module):
    """Multi-step LIF neurons: [T, B, ...] input currents -> [T, B, ...] spikes.

    ``decay`` is lambda (the leak per step), ``threshold`` theta; ``surrogate``
    is "atan" or "sigmoid" with slope ``alpha``.
    """

    def __init__(self, decay: float = 0.5, threshold: float = 1.0, surrogate: str = "atan", alpha: float = 2.0) -> None:
        super().__init__()
        if surrogate not in ("atan", "sigmoid"):
            raise ValueError(f"surrogate must be 'atan' or 'sigmoid', got {surrogate!r}")
        self.decay = decay
        self.threshold = threshold
        self.surrogate = surrogate
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            u = self.decay * u + x[t]
            s = spike(u - self.threshold, self.alpha, self.surrogate)
            u = u - self.threshold * s
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, threshold={self.threshold}, surrogate={self.surrogate}, alpha={self.alpha}"
