"""What this machine offers vsr-pipe (``vsr-pipe doctor``): versions, engines, GPUs, codecs, cache."""

from __future__ import annotations

import platform

SOFTWARE_ENCODERS = ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "ffv1")


def doctor_rows() -> list[tuple[str, str]]:
    """(what, finding) rows, in the order the command prints them."""
    import av
    import torch

    from ._version import __version__
    from .engines.cache import cache_dir
    from .io.encoders import hardware_encoders_that_open
    from .io.protocols import summary_line

    rows = [("vsr-pipe", __version__), ("python", platform.python_version()), ("torch", torch.__version__),
            ("PyAV / FFmpeg", f"{av.__version__} / {getattr(av, 'ffmpeg_version_info', '?')}")]  # fmt: skip
    rows += _engine_rows()
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rows.append((f"cuda:{i}", f"{p.name}, {p.total_memory // 2**20} MiB, sm_{p.major}{p.minor}"))
    else:
        rows.append(("cuda", "no GPU visible to torch"))
    codecs = av.codecs_available
    # Opened, not just listed: FFmpeg lists NVENC and QSV whenever they are compiled in.
    rows.append(("hardware encoders", ", ".join(hardware_encoders_that_open()) or "none that open here"))
    rows.append(("software encoders", ", ".join(c for c in SOFTWARE_ENCODERS if c in codecs)))
    rows.append(("network protocols", summary_line()))
    rows.append(("engine cache", str(cache_dir())))
    return rows


def _engine_rows() -> list[tuple[str, str]]:
    rows = []
    try:
        import onnxruntime as ort

        rows.append(("onnxruntime", f"{ort.__version__} ({', '.join(ort.get_available_providers())})"))
    except ImportError:
        rows.append(("onnxruntime", "not installed (pip install onnxruntime)"))
    try:
        import tensorrt

        rows.append(("tensorrt", tensorrt.__version__))
    except ImportError:
        rows.append(("tensorrt", "not installed"))
    return rows
