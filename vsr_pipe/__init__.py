"""vsr-pipe: streaming video super-resolution and rescaling.

``import vsr_pipe`` is cheap: it loads no model, touches no GPU and reads no file; the work starts
when :func:`upscale` or :func:`frames` is called.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._version import __version__ as __version__  # re-exported
from .config import EncodeOptions, LiveOptions, PipelineOptions, Scale, SourceOptions, parse_size
from .errors import (
    EngineUnavailable,
    InputLost,
    InputNotFound,
    Interrupted,
    InvalidOption,
    NotAVideo,
    OutputError,
    UnsupportedInput,
    VsrPipeError,
    WeightsError,
)

if TYPE_CHECKING:
    import av

    from .pipeline.run import Progress, RunSummary

__all__ = [
    "upscale", "frames", "deliver", "restore", "Scale", "EncodeOptions", "PipelineOptions", "LiveOptions", "SourceOptions",
    "VsrPipeError", "InputNotFound", "NotAVideo", "UnsupportedInput", "InvalidOption", "OutputError",
    "WeightsError", "EngineUnavailable", "Interrupted", "InputLost",
]  # fmt: skip


def _options(scale, size, model, encode: EncodeOptions | None, **kw) -> PipelineOptions:
    """Options from the API's arguments; both ``scale`` and ``size`` is refused, as on the CLI."""
    if size is not None and not isinstance(size, tuple):
        size = parse_size(size)
    parsed = Scale.parse(scale) if scale is not None else None
    return PipelineOptions(scale=parsed, size=size, model=model, encode=encode or EncodeOptions(), **kw)


def upscale(
    src: str,
    dst: str,
    scale: float | str | Scale | None = None,
    *,
    size: tuple[int, int] | str | None = None,
    model: str = "auto",
    encode: EncodeOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    **options,
) -> RunSummary:
    """Upscale the video ``src`` into ``dst``, keeping audio, subtitles, timestamps and colour tags.

    Args:
        src: input path, or "-" for standard input.
        dst: output path (container from its extension), or "-" with ``encode.container_format``.
        scale: 1 to 8, per axis as "1.5x2"; with model "irn" 0.25 to 1 (a learned downscale that
            records itself in the file's tags) or 1 to 4 (its inverse). None: 2, or with ``size``,
            or the original size when ``src`` carries a rescaling tag.
        size: output (width, height) or "WxH" instead of ``scale``.
        model: "auto" (espcn; irn's inverse on a video irn made), "espcn", "irn", "bicubic",
            "lanczos" or "bilinear".
        encode: codec, CRF, preset, pixel format; defaults to libx264 CRF 18.
        on_progress: called after each chunk with frames done, total, elapsed seconds.
        stop: set it to end early; the output keeps the frames done so far.
        options: further :class:`PipelineOptions` fields (chunk_frames, device, threads, ...).
    Returns:
        A :class:`~vsr_pipe.pipeline.run.RunSummary`.
    """
    from .pipeline.run import run_to_file

    opts = _options(scale, size, model, encode, **options)
    return run_to_file(src, dst, opts, on_progress=on_progress, stop=stop)


def frames(
    src: str, scale: float | str | Scale | None = None, *, size=None, model: str = "auto", **options
) -> Iterator[av.VideoFrame]:
    """Iterate over the upscaled frames of ``src`` as planar-YUV ``av.VideoFrame`` objects with
    their original ``pts`` and ``time_base``; ``frame.to_ndarray(format="rgb24")`` gives pixels."""
    from .io.encode import video_frame
    from .pipeline.run import iter_planes

    opts = _options(scale, size, model, None, **options)
    for planes, pts, opened in iter_planes(src, opts):
        yield video_frame(planes, pts, opened.plan.dst, opened.source.facts.time_base)


def deliver(master: str, out: str, options=None, on_chunk=None):
    """Package ``master`` for delivery into ``out``: the LR video, one small correction network per
    chunk (or one for all, ``joint``), a checked manifest and a report; a folder, an HLS folder, or
    one ``.mkv`` with the package attached (``vsr_pipe.delivery.server.DeliverOptions``; see the
    README's *Content-aware delivery*). Returns a ``DeliverySummary``."""
    from .delivery.server import DeliverOptions
    from .delivery.server import deliver as run

    return run(master, out, options or DeliverOptions(), on_chunk=on_chunk)


def restore(package: str, dst: str, options=None, on_progress=None, stop: threading.Event | None = None):
    """Restore a delivery ``package`` (a folder, a ``.mkv`` with the package attached, or an
    ``http(s)://.../manifest.json`` or ``.../lr.m3u8``) into ``dst``, each chunk's weights swapped
    in at its first frame; returns the run's ``RunSummary``."""
    from .delivery.client import RestoreOptions
    from .delivery.client import restore as run

    return run(package, dst, options or RestoreOptions(), on_progress=on_progress, stop=stop)
