"""Compact delivery weights: modulation codes (``models/modulation.py``) as small safetensors files,
zstd-compressed against the codes dictionary vsr-pipe ships (``dictionaries.py``: the header costs
next to nothing), coded as a difference from the codes in effect before them.

A file holds one int8 tensor, ``codes``: every conv's per-channel scale and shift codes, by name in
sorted order (the architecture fixes the names and sizes). Its metadata says whether it is ``absolute`` (the title's codes) or a ``delta`` (this chunk's codes minus
the codes in effect at its start, modulo 256): a chunk that changes little is mostly zeros, which zstd
makes a few bytes. The reader is as strict as the package's other checks: compressed and decompressed
sizes bounded before anything is allocated, the safetensors header parsed by the safetensors library,
exactly the expected tensor, length and dtype.
"""

from __future__ import annotations

import io

import numpy as np

from ..errors import VsrPipeError
from . import dictionaries

TENSOR = "codes"  # the one tensor of a file: every code, by name in sorted order
MAX_DECOMPRESSED = 1 << 20  # a 32x4 correction's codes are 1 kB; a hostile frame must not ask for more
KINDS = ("absolute", "delta")


class CompactWeightsError(VsrPipeError, ValueError):
    """A compact weights file that is not what the manifest says."""


def encode(codes: dict[str, np.ndarray], previous: dict[str, np.ndarray] | None = None) -> bytes:
    """``codes`` (int8 by name) as compressed bytes: absolute, or a delta from ``previous``. All the
    codes travel as one int8 tensor, by name in sorted order: a per-tensor header would cost more
    than the codes."""
    from safetensors.numpy import save

    kind = "absolute" if previous is None else "delta"
    flat = np.concatenate([np.asarray(codes[k], np.int8).reshape(-1) for k in sorted(codes)])
    if previous is not None:
        before = np.concatenate([np.asarray(previous[k], np.int8).reshape(-1) for k in sorted(codes)])
        flat = (flat.astype(np.int16) - before).astype(np.int8)  # modulo 256
    raw = save({TENSOR: np.ascontiguousarray(flat)}, metadata={"format": "vsr-pipe modulation codes", "kind": kind})
    return dictionaries.compress(raw, dictionaries.CODES)


def decode(
    data: bytes, shapes: dict[str, tuple[int, ...]], previous: dict[str, np.ndarray] | None, where: str
) -> dict[str, np.ndarray]:
    """The int8 codes in effect after the file ``data``; a delta needs ``previous``. ``where`` names
    the file in errors."""
    raw = _decompress(data, where)
    kind, tensors = _read(raw, where)
    count = int(sum(np.prod(shape) for shape in shapes.values()))
    if set(tensors) != {TENSOR}:
        raise CompactWeightsError(f"{where}: holds {sorted(tensors)[:3]}, not the one tensor '{TENSOR}'")
    flat = tensors[TENSOR]
    if flat.dtype != np.int8 or flat.shape != (count,):
        raise CompactWeightsError(
            f"{where}: {TENSOR} is {flat.dtype} {flat.shape}, expected int8 ({count},): not this correction's"
        )
    if kind == "delta" and previous is None:
        raise CompactWeightsError(f"{where}: a delta with no weights before it")
    out, at = {}, 0
    for name in sorted(shapes):
        n = int(np.prod(shapes[name]))
        value = flat[at : at + n].reshape(shapes[name])
        at += n
        if kind == "delta":
            value = (np.asarray(previous[name], np.int16) + value).astype(np.int8)  # modulo 256, as encoded
        out[name] = value
    return out


def kind_of(data: bytes) -> str:
    """ "absolute" or "delta", of a file :func:`decode` has accepted."""
    return _read(_decompress(data, "weights"), "weights")[0]


def is_zero_delta(codes: dict[str, np.ndarray], previous: dict[str, np.ndarray]) -> bool:
    return all(np.array_equal(np.asarray(codes[k], np.int8), np.asarray(previous[k], np.int8)) for k in codes)


def _decompress(data: bytes, where: str) -> bytes:
    try:
        return dictionaries.decompress(data, dictionaries.CODES, MAX_DECOMPRESSED)
    except dictionaries.DictionaryFrameError as e:
        raise CompactWeightsError(f"{where}: {e}") from None


def _read(raw: bytes, where: str) -> tuple[str, dict[str, np.ndarray]]:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        tensors = load(raw)
        meta = _metadata(raw)
    except (SafetensorError, ValueError, OSError) as e:
        raise CompactWeightsError(f"{where}: not valid safetensors ({e})") from None
    kind = meta.get("kind")
    if meta.get("format") != "vsr-pipe modulation codes" or kind not in KINDS:
        raise CompactWeightsError(
            f"{where}: not vsr-pipe modulation codes (format {meta.get('format')!r}, kind {kind!r})"
        )
    return kind, tensors


def _metadata(raw: bytes) -> dict:
    import json

    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise ValueError("header longer than the file")
    header = json.load(io.BytesIO(raw[8 : 8 + size]))
    meta = header.get("__metadata__", {})
    return meta if isinstance(meta, dict) else {}
