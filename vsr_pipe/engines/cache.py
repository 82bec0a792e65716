"""Where compiled engines live, and the names that say what each was built from.

A cache entry's name encodes everything that changes it (architecture, graph kind, precision,
versions), so a stale entry is never reused; a corrupt one is rebuilt by the engine that finds it.
Engine entries do not depend on weight values (``graph_entry_name``): weights are swapped into a
built engine, so one entry serves every weight set of an architecture.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only for the annotations: a run that needs no torch finds its cache without it
    import torch

ENV_VAR = "VSR_PIPE_CACHE"


def cache_dir() -> Path:
    """``$VSR_PIPE_CACHE``; else ``engines/`` of a source checkout; else the user cache folder."""
    if os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
    else:
        checkout = Path(__file__).resolve().parents[2] / "engines"
        if (checkout / "README.md").is_file() and os.access(checkout, os.W_OK):
            path = checkout
        else:
            base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            path = base / "vsr-pipe" / "engines"
    path.mkdir(parents=True, exist_ok=True)
    return path


def weights_hash(model: torch.nn.Module) -> str:
    """Short sha256 over parameter names, shapes and bytes: equal weights give equal names."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().float()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def graph_hash(model: torch.nn.Module) -> str:
    """Short sha256 over what fixes the traced graph but not the weight values: module classes and
    their settings (``repr`` and plain attributes such as a bound geometry), and the state's names,
    shapes and dtypes."""
    h = hashlib.sha256(repr(model).encode())
    for name, module in model.named_modules():
        h.update(f"{name}:{type(module).__module__}.{type(module).__qualname__}".encode())
        for attr, value in sorted(vars(module).items()):
            if not attr.startswith("_") and attr != "training" and _is_setting(value):
                h.update(f"{attr}={value!r}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
    h.update(repr(getattr(model, "example_shape", None)).encode())
    return h.hexdigest()[:16]


def _is_setting(value: object) -> bool:
    if isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, tuple):
        return all(_is_setting(v) for v in value)
    return hasattr(value, "__dataclass_fields__")


def graph_entry_name(model_name: str, model: torch.nn.Module, *parts: str) -> str:
    """e.g. ``espcn_x2-g3f2a...-opset17-fp32``: the same for any weights of one architecture."""
    return "-".join([model_name, "g" + graph_hash(model), *parts])


def entry_name(model_name: str, model: torch.nn.Module, *parts: str) -> str:
    """e.g. ``espcn_x2-3f2a...-opset17-fp32.onnx``."""
    return "-".join([model_name, weights_hash(model), *parts])
