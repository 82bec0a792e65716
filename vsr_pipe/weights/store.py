"""Model weights: safetensors files with their architecture in the header, plus a manifest.

Only safetensors are read (no pickle), so a weights file can never execute code. Every problem with
a file (not safetensors, wrong architecture, wrong shapes) becomes one :class:`WeightsError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch

from ..errors import WeightsError
from ..models.correction import Corrected, CorrectionNet
from ..models.espcn import ESPCN
from ..models.rescaler import COND_CHANNELS, LEGACY_COND_CHANNELS, ArbitraryRescaler
from ..models.temporal import TemporalSR
from .shipped import MANIFEST, manifest, shipped_dir, shipped_path, shipped_sha  # noqa: F401 (the names callers know)


def build_model(architecture: dict) -> torch.nn.Module:
    """An untrained module of the architecture a weights header describes."""
    kind = architecture.get("architecture")
    try:
        if kind == "espcn":
            return ESPCN(
                scale=int(architecture["scale"]),
                num_ch=int(architecture.get("channels", 1)),
                num_feat=tuple(int(v) for v in str(architecture.get("num_feat", "64,32")).split(",")),
                residual=str(architecture.get("residual", "true")).lower() == "true",
            )
        if kind == "irn_arbitrary":
            blocks = tuple(int(v) for v in str(architecture["blocks"]).split(","))
            if len(blocks) != 2:
                raise ValueError("blocks must name two levels")
            cond = int(architecture.get("cond_channels", LEGACY_COND_CHANNELS))
            if cond not in (LEGACY_COND_CHANNELS, COND_CHANNELS):
                raise ValueError(f"cond_channels {cond} is not {LEGACY_COND_CHANNELS} or {COND_CHANNELS}")
            return ArbitraryRescaler(blocks, int(architecture["growth"]), int(architecture["convs"]), cond)
        if kind == "corrected":
            return _build_corrected(architecture)
        if kind == "temporal":
            return _build_temporal(architecture)
    except (KeyError, ValueError) as e:
        raise WeightsError(f"weights header for {kind} is malformed: {e}") from None
    raise WeightsError(f"unknown architecture '{kind}' in weights header")


MAX_CORRECTION_FEATURES, MAX_CORRECTION_BLOCKS = 256, 32  # a header from anywhere must not ask for gigabytes


def _build_corrected(architecture: dict) -> Corrected:
    """A generic model plus a correction network (``models/correction.py``); the base's own header
    is nested as JSON, and may not itself be corrected."""
    base_header = json.loads(architecture["base"])
    if not isinstance(base_header, dict) or base_header.get("architecture") == "corrected":
        raise ValueError("base must be a plain model's header")
    features, blocks = int(architecture["features"]), int(architecture["blocks"])
    if not (1 <= features <= MAX_CORRECTION_FEATURES and 0 <= blocks <= MAX_CORRECTION_BLOCKS):
        raise ValueError(f"features {features} / blocks {blocks} out of range")
    base = build_model({str(k): str(v) for k, v in base_header.items()})
    return Corrected(base, CorrectionNet(int(architecture["scale"]), features, blocks))


MAX_TEMPORAL_FEATURES, MAX_TEMPORAL_LAYERS, MAX_TEMPORAL_STATE = 128, 16, 64


def _build_temporal(architecture: dict) -> TemporalSR:
    """The causal recurrent model (``models/temporal.py``) over its single-frame ESPCN."""
    scale, features = int(architecture["scale"]), int(architecture["features"])
    layers, state = int(architecture["layers"]), int(architecture["state"])
    if not (2 <= scale <= 8 and 1 <= features <= MAX_TEMPORAL_FEATURES and 0 <= layers <= MAX_TEMPORAL_LAYERS
            and 1 <= state <= MAX_TEMPORAL_STATE):  # fmt: skip
        raise ValueError(f"scale {scale} / features {features} / layers {layers} / state {state} out of range")
    return TemporalSR(scale, features, layers, state)


def load_model(weights: str | Path | bytes) -> torch.nn.Module:
    """Read weights and return their model, ready for inference: a safetensors file's path, or the
    bytes of one (``model_bytes``: weights built in memory, which no file need hold)."""
    from safetensors import SafetensorError, safe_open

    in_memory = isinstance(weights, (bytes, bytearray, memoryview))
    name = f"weights in memory ({len(weights)} bytes)" if in_memory else Path(weights).name
    if not in_memory and not Path(weights).is_file():
        raise WeightsError(f"weights file not found: {Path(weights)}")
    try:
        if in_memory:
            header, state = _read_bytes(bytes(weights))
        else:
            with safe_open(str(weights), framework="pt") as f:
                header = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{name} is not a valid safetensors file: {e}") from None
    _check_tensors(name, header, state)
    model = build_model(header)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0:2]
        raise WeightsError(f"{name} does not fit a {header.get('architecture')} model: {' '.join(first)}") from None
    return model.eval()


def _read_bytes(data: bytes) -> tuple[dict, dict[str, torch.Tensor]]:
    """The header metadata and tensors of a safetensors file held in ``data``."""
    from safetensors.torch import load

    if len(data) < 8:
        raise ValueError("too short for a safetensors header")
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8:
        raise ValueError("its header runs past its end")
    parsed = json.loads(data[8 : 8 + length])
    if not isinstance(parsed, dict):
        raise ValueError("its header is not a JSON object")
    header = parsed.get("__metadata__") or {}
    return {str(k): str(v) for k, v in header.items()}, dict(load(data))


def _check_tensors(name: str, header: dict, state: dict[str, torch.Tensor]) -> None:
    """Refuse weights that would load but make no sense: non-float or non-finite values, or a header
    whose architecture does not match the file's tensors (checked on the meta device, so a header
    claiming a huge model allocates nothing)."""
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            raise WeightsError(f"{name}: tensor {key} holds {tensor.dtype} values, not floating point weights")
        if not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{name}: tensor {key} holds NaN or infinite values")
    for field in ("scale", "channels", "num_feat", "blocks", "growth", "convs", "cond_channels"):
        numbers = re.findall(r"\d+", str(header.get(field, "")))
        if any(int(v) > 1024 for v in numbers):
            raise WeightsError(f"{name}: header field {field}={header[field]!r} is out of range (at most 1024)")
    try:
        if _small(header):  # a few hundred thousand parameters at most: building it is cheaper than
            model = build_model(header)  # the meta device, whose first use imports for seconds
        else:
            with torch.device("meta"):
                model = build_model(header)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    except WeightsError:
        raise
    except (RuntimeError, TypeError, ValueError, ZeroDivisionError) as e:
        raise WeightsError(f"{name}: its header describes no model that can be built ({e})") from None
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        wrong = sorted(set(expected) ^ set(found)) or [k for k in expected if expected[k] != found[k]]
        raise WeightsError(
            f"{name} does not fit a {header.get('architecture')} model as its header describes it "
            f"(first mismatch: {wrong[0]})"
        )


# Header fields within which the two shipped architectures stay small (the shipped weights are far inside).
_SMALL = {"espcn": {"scale": 8, "channels": 4, "num_feat": 128},
          "temporal": {"scale": 8, "features": 128, "layers": 16, "state": 64},
          "irn_arbitrary": {"blocks": 8, "growth": 32, "convs": 4, "cond_channels": 16, "channels": 4}}  # fmt: skip


def _small(header: dict) -> bool:
    limits = _SMALL.get(str(header.get("architecture")))
    if limits is None:
        return False
    for field, value in header.items():
        numbers = [int(v) for v in re.findall(r"\d+", str(value))]
        if field != "architecture" and (
            field not in limits and field not in ("residual",) or any(n > limits.get(field, 0) for n in numbers)
        ):
            return False
    return True


def architecture_header(model: torch.nn.Module) -> dict[str, str]:
    if isinstance(model, Corrected):
        c = model.correction
        return {
            "architecture": "corrected",
            "base": json.dumps(architecture_header(model.base), sort_keys=True),
            "scale": str(c.scale),
            "features": str(c.features),
            "blocks": str(c.blocks),
        }
    if isinstance(model, TemporalSR):
        return {
            "architecture": "temporal",
            "scale": str(model.scale),
            "features": str(model.head.out_channels),
            "layers": str(len(model.body)),
            "state": str(model.state_channels),
        }
    if isinstance(model, ESPCN):
        return {
            "architecture": "espcn",
            "scale": str(model.scale),
            "channels": str(model.num_ch),
            "num_feat": f"{model.conv_first.out_channels},{model.conv_body.out_channels}",
            "residual": str(model.residual).lower(),
        }
    if isinstance(model, ArbitraryRescaler):
        return {
            "architecture": "irn_arbitrary",
            "blocks": ",".join(str(b) for b in model.blocks),
            "growth": str(model.growth),
            "convs": str(model.convs),
            "cond_channels": str(model.cond_channels),
            "channels": "1",
        }
    raise WeightsError(f"cannot describe a {type(model).__name__} in a weights header")


def model_bytes(model: torch.nn.Module) -> bytes:
    """``model`` as a safetensors file with its architecture header, in memory."""
    from safetensors.torch import save

    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    return save(state, metadata=architecture_header(model))


def save_model(model: torch.nn.Module, path: str | Path) -> str:
    """Write ``model`` as safetensors with its architecture header; returns the file's sha256."""
    data = model_bytes(model)
    write_atomic((Path(path), data))
    return hashlib.sha256(data).hexdigest()


def manifest_with(name: str, entry: dict, folder: Path | None = None) -> bytes:
    """The manifest beside the weights in ``folder`` with ``name`` added or replaced, as file bytes."""
    path = (folder or shipped_dir()) / MANIFEST
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = entry
    return (json.dumps(dict(sorted(data.items())), indent=2) + "\n").encode()


def update_manifest(name: str, entry: dict, folder: Path | None = None) -> None:
    """Add or replace ``name`` in the manifest beside the weights."""
    write_atomic(((folder or shipped_dir()) / MANIFEST, manifest_with(name, entry, folder)))


def write_atomic(*files: tuple[Path, bytes]) -> None:
    """Write each (path, bytes) beside its path, then rename them all over their targets: a failure
    while writing (full disk, a stop) leaves every old file whole and no partial one."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            staged.append((tmp, path))
            tmp.write_bytes(data)
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
