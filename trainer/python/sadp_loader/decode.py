"""Field decoders: member bytes of a WebDataset sample -> Python/NumPy values, by
extension. ``cls``/``label``/``index`` -> int, ``npy`` -> numpy array,
``json`` -> object, ``txt``/``text`` -> str, images (png, jpg, jpeg, ppm, pgm,
pbm, bmp, gif, tif, tiff, webp) -> uint8 numpy array (H, W) or (H, W, C) via
PIL when it is installed; anything else (and images without PIL) stays raw
bytes. A value that does not decode raises SadpError SADP_SAMPLE_DECODE naming
the sample key, id and field."""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Dict, Mapping, Optional

import grpc

from .errors import SadpError

__all__ = ["Decoder", "default_decoders", "decode_field"]

Decoder = Callable[[bytes], Any]

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "ppm", "pgm", "pbm", "bmp", "gif", "tif", "tiff", "webp")


def decode_int(data: bytes) -> int:
    text = data.decode("ascii").strip()
    if not text.isdigit():
        raise ValueError(f"label {text[:16]!r} is not an ASCII class index")
    return int(text)


def decode_npy(data: bytes) -> Any:
    import numpy as np

    # allow_pickle=False: a shard must never run code in the trainer.
    return np.load(io.BytesIO(data), allow_pickle=False)


def decode_image(data: bytes) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.asarray(img)


def _pil_available() -> bool:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def default_decoders() -> Dict[str, Decoder]:
    d: Dict[str, Decoder] = {
        "cls": decode_int,
        "label": decode_int,
        "index": decode_int,
        "npy": decode_npy,
        "json": lambda b: json.loads(b.decode("utf-8")),
        "txt": lambda b: b.decode("utf-8"),
        "text": lambda b: b.decode("utf-8"),
    }
    if _pil_available():
        for ext in IMAGE_EXTENSIONS:
            d[ext] = decode_image
    return d


def decode_field(
    field: str,
    data: bytes,
    key: str = "?",
    sample_id: int = -1,
    decoders: Optional[Mapping[str, Optional[Decoder]]] = None,
) -> Any:
    """Decodes one member. ``decoders`` maps extension -> function (None = raw bytes);
    by default ``default_decoders()``."""
    table = default_decoders() if decoders is None else decoders
    fn = table.get(field)
    if fn is None:
        return data
    if len(data) == 0:
        raise SadpError(
            "SADP_SAMPLE_DECODE",
            f"sample {key} (id {sample_id}) has no .{field} member",
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    try:
        return fn(data)
    except Exception as err:
        raise SadpError(
            "SADP_SAMPLE_DECODE",
            f"sample {key} (id {sample_id}) field .{field}: {err}",
            grpc.StatusCode.INVALID_ARGUMENT,
        ) from err
