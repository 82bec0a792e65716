"""Compact delivery weights: modulation codes (``models/modulation.py``) as small zstd-compressed
safetensors files, coded as a difference from the codes in effect before them.

A file holds int8 tensors ``mod.<conv>.scale`` / ``mod.<conv>.shift``, one per output channel. Its
metadata says whether it is ``absolute`` (the title's codes) or a ``delta`` (this chunk's codes minus
the codes in effect at its start, modulo 256): a chunk that changes little is mostly zeros, which zstd
makes a few bytes. The reader is as strict as the package's other checks: compressed and decompressed
sizes bounded before anything is allocated, the safetensors header parsed by the safetensors library,
exactly the expected names, shapes and dtype.
"""

from __future__ import annotations

import io

import numpy as np

from ..errors import VsrPipeError

PREFIX = "mod."
MAX_DECOMPRESSED = 1 << 20  # a 32x4 correction's codes are 1 kB; a hostile frame must not ask for more
LEVEL = 19
KINDS = ("absolute", "delta")


class CompactWeightsError(VsrPipeError, ValueError):
    """A compact weights file that is not what the manifest says."""


def encode(codes: dict[str, np.ndarray], previous: dict[str, np.ndarray] | None = None) -> bytes:
    """``codes`` (int8 by name) as compressed bytes: absolute, or a delta from ``previous``."""
    import zstandard
    from safetensors.numpy import save

    kind = "absolute" if previous is None else "delta"
    tensors = {}
    for name, value in sorted(codes.items()):
        value = np.asarray(value, np.int8)
        if previous is not None:
            value = (value.astype(np.int16) - np.asarray(previous[name], np.int16)).astype(np.int8)  # modulo 256
        tensors[PREFIX + name] = np.ascontiguousarray(value)
    raw = save(tensors, metadata={"format": "vsr-pipe modulation codes", "kind": kind})
    return zstandard.ZstdCompressor(level=LEVEL, write_content_size=True).compress(raw)


def decode(
    data: bytes, shapes: dict[str, tuple[int, ...]], previous: dict[str, np.ndarray] | None, where: str
) -> dict[str, np.ndarray]:
    """The int8 codes in effect after the file ``data``; a delta needs ``previous``. ``where`` names
    the file in errors."""
    raw = _decompress(data, where)
    kind, tensors = _read(raw, where)
    want = {PREFIX + k: v for k, v in shapes.items()}
    if set(tensors) != set(want):
        missing, extra = sorted(set(want) - set(tensors)), sorted(set(tensors) - set(want))
        raise CompactWeightsError(f"{where}: tensors do not match the correction (missing {missing[:3]}, extra {extra[:3]})")
    for name, value in tensors.items():
        if value.dtype != np.int8 or value.shape != tuple(want[name]):
            raise CompactWeightsError(f"{where}: {name} is {value.dtype} {value.shape}, expected int8 {tuple(want[name])}")
    if kind == "delta" and previous is None:
        raise CompactWeightsError(f"{where}: a delta with no weights before it")
    out = {}
    for name in shapes:
        value = tensors[PREFIX + name]
        if kind == "delta":
            value = (np.asarray(previous[name], np.int16) + value).astype(np.int8)  # modulo 256, as encoded
        out[name] = value
    return out


def kind_of(data: bytes) -> str:
    """"absolute" or "delta", of a file :func:`decode` has accepted."""
    return _read(_decompress(data, "weights"), "weights")[0]


def is_zero_delta(codes: dict[str, np.ndarray], previous: dict[str, np.ndarray]) -> bool:
    return all(np.array_equal(np.asarray(codes[k], np.int8), np.asarray(previous[k], np.int8)) for k in codes)


def _decompress(data: bytes, where: str) -> bytes:
    import zstandard

    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as e:
        raise CompactWeightsError(f"{where}: not a zstd frame ({e})") from None
    if params.content_size <= 0 or params.content_size > MAX_DECOMPRESSED:
        raise CompactWeightsError(f"{where}: declares {params.content_size} bytes uncompressed (at most {MAX_DECOMPRESSED})")
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_DECOMPRESSED)
    except zstandard.ZstdError as e:
        raise CompactWeightsError(f"{where}: damaged ({e})") from None
    if len(raw) != params.content_size:
        raise CompactWeightsError(f"{where}: {len(raw)} bytes where the frame declares {params.content_size}")
    return raw


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
        raise CompactWeightsError(f"{where}: not vsr-pipe modulation codes (format {meta.get('format')!r}, kind {kind!r})")
    return kind, tensors


def _metadata(raw: bytes) -> dict:
    import json

    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise ValueError("header longer than the file")
    header = json.load(io.BytesIO(raw[8 : 8 + size]))
    meta = header.get("__metadata__", {})
    return meta if isinstance(meta, dict) else {}
