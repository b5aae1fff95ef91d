"""sadp-loader's Python trainer SDK: a client for the loader service (batches of
SADP-selected samples with importance weights, acks carrying scores back), a
PyTorch IterableDataset over it, and the spike-aware score for PyTorch.

The torch-dependent parts (``SadpIterableDataset``, ``SpikeAwareScore``, ``LIF``)
import torch when first used, so the client works without it.
"""

from typing import Any

from .batch import AckRecord, Batch, EpochInfo
from .client import LoaderClient, create_loader_client
from .epoch_stream import EpochStream, EpochStreamStats
from .errors import SadpError
from .options import ClientOptions, ReconnectOptions, TlsOptions

__version__ = "0.1.0"

__all__ = [
    "AckRecord",
    "Batch",
    "ClientOptions",
    "EpochInfo",
    "EpochStream",
    "EpochStreamStats",
    "LIF",
    "LoaderClient",
    "ReconnectOptions",
    "SadpError",
    "SadpIterableDataset",
    "SpikeAwareScore",
    "TlsOptions",
    "create_loader_client",
    "decode_field",
]

_LAZY = {
    "SadpIterableDataset": ".dataset",
    "SpikeAwareScore": ".score",
    "LIF": ".lif",
    "decode_field": ".decode",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)
