"""Which weights this vsr-pipe ships, read from their manifest: no torch, so a caller that only needs
to know a name or a hash (a delivery's options, a package check) starts at once."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import WeightsError

MANIFEST = "manifest.json"


def shipped_dir() -> Path:
    return Path(str(resources.files("vsr_pipe.weights")))


def manifest() -> dict:
    """The manifest of shipped weights: name -> architecture, scale, training data, figures."""
    path = shipped_dir() / MANIFEST
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def shipped_path(name: str) -> Path:
    path = shipped_dir() / f"{name}.safetensors"
    if not path.exists():
        known = ", ".join(sorted(manifest())) or "none"
        raise WeightsError(f"no shipped weights named {name} (shipped: {known})")
    return path


def shipped_sha(name: str) -> str:
    """The manifest's sha256 of shipped weights (identifies them in a rescaling tag); "" if unknown."""
    return str(manifest().get(name, {}).get("sha256", ""))
