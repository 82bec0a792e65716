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


# Encoder names whose LR the HEVC-trained restorer is for (x265 blurs where x264 blocks: the mixed
# restorer gained +0.12 dB over ESPCN on the camera clips' x265 LR, the HEVC one +0.19).
HEVC_ENCODERS = ("libx265", "hevc", "hevc_nvenc", "hevc_qsv", "hevc_vaapi", "hevc_videotoolbox", "hevc_amf")


def codec_aware_name(factor: int, codec: str = "libx264") -> str:
    """The shipped restorer trained on LR decoded after ``codec`` (an encoder's name) at ``factor``:
    ``espcn_y_x{factor}_codec_hevc`` for an HEVC encoder where it ships, else ``espcn_y_x{factor}_codec``."""
    plain = f"espcn_y_x{factor}_codec"
    if codec.lower() in HEVC_ENCODERS and shipped_sha(plain + "_hevc"):
        return plain + "_hevc"
    return plain
