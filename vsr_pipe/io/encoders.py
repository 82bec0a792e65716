"""Which video encoders this FFmpeg has, and which of them really open on this machine.

FFmpeg lists hardware encoders (NVENC, QSV, AMF, V4L2) whenever they are compiled in, GPU or not;
only opening one tells whether the device and driver are here.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction

import av
from av.codec.codec import Capabilities

_HARDWARE = Capabilities.hardware | Capabilities.hybrid  # hybrid: QSV, partly on the CPU
_PROBE_SIZE = 256  # pixels a side: small, but above every hardware encoder's minimum


def video_encoder(name: str) -> av.Codec | None:
    """The video encoder called ``name``, or None if this FFmpeg has none by that name."""
    try:
        codec = av.Codec(name, "w")
    except Exception:  # noqa: BLE001 (PyAV raises several kinds for an unknown name)
        return None
    return codec if codec.type == "video" else None


def x265_params(params: str = "", forced_keyframes: bool = False) -> str:
    """The user's ``x265-params`` with defaults of ours, each unless the user set it:
    ``log-level=error`` (x265 prints its banner and notes to stderr itself, past FFmpeg's log, which
    PyAV keeps silent) and ``info=0`` (x265 otherwise writes its version and whole option string,
    ≈ 1.9 kB, as an SEI with every keyframe once headers repeat, as in MPEG-TS and HLS: it doubled
    a small LR stream's bytes at a keyframe per chunk). Where the caller forces keyframes (a
    delivery chunk's start), also ``b-adapt=0``: x265's default trellis B-frame decision, given
    forced frame types, loses about 1 dB at low rates (its cutree goes astray: `person` at CRF 48,
    30.37 dB against 31.43 with the same keyframes from x265's own keyint); with fixed B-frames the
    forced keyframes cost what x265's own do, in 2-6 % fewer bytes."""
    given = {p.split("=", 1)[0] for p in params.split(":") if p}
    defaults = ("log-level=error", "info=0", *(("b-adapt=0",) if forced_keyframes else ()))
    ours = [p for p in defaults if p.split("=", 1)[0] not in given]
    return ":".join([*ours, *([params] if params else [])])


X264_INFO = b"x264 - core"  # how x264's version SEI begins (its whole option string follows)


def x264_info_removable(codec: str, codec_options: dict) -> bool:
    """Whether an output's first packet may lose its SEI units: x264 writes its version and whole
    option string (≈ 0.7 kB) there as an SEI and has no switch to leave it out (x265's ``info=0``).
    Not where the user passed x264 options: they may ask for SEIs that matter (HDR, recovery points)."""
    return codec == "libx264" and not {"x264-params", "x264opts"} & set(codec_options)


def without_sei(stream, packet) -> list:
    """``packet`` with its SEI units taken out by FFmpeg's ``filter_units`` (the picture untouched);
    ``packet`` as it is where this FFmpeg cannot (a build without the filter): the bytes are only a saving."""
    try:
        from av.bitstream import BitStreamFilterContext

        bsf = BitStreamFilterContext("filter_units=remove_types=6", stream)
        return [*bsf.filter(packet), *bsf.filter(None)]
    except (ImportError, av.error.FFmpegError, ValueError):
        return [packet]


def is_hardware(codec: av.Codec) -> bool:
    return bool(codec.capabilities & _HARDWARE)


def encoder_opens(name: str) -> bool:
    """Whether ``name`` opens here on a tiny frame, in a pixel format it takes."""
    codec = video_encoder(name)
    if codec is None:
        return False
    formats = [f.name for f in codec.video_formats or []]
    try:
        ctx = av.CodecContext.create(codec, "w")
        ctx.width = ctx.height = _PROBE_SIZE
        ctx.pix_fmt = "yuv420p" if not formats or "yuv420p" in formats else formats[0]
        ctx.time_base = Fraction(1, 25)
        with _stderr_silenced():  # x265 and SVT-AV1 print a banner on open and a line on close
            ctx.open()
            del ctx  # closes the encoder here, inside the silence
        return True
    except Exception:  # noqa: BLE001 (no device, no driver, no library: all mean "not here")
        return False


def hardware_encoders_that_open() -> list[str]:
    """Names of the hardware video encoders that open here, sorted."""
    return [c.name for c in _video_encoders() if is_hardware(c) and encoder_opens(c.name)]


def software_encoders_like(name: str) -> list[str]:
    """The software encoders for the same format as encoder ``name`` (H.264, HEVC...) that open here."""
    wanted = video_encoder(name)
    if wanted is None:
        return []
    return [c.name for c in _video_encoders() if c.id == wanted.id and not is_hardware(c) and encoder_opens(c.name)]


def _video_encoders() -> list[av.Codec]:
    """Each video encoder once (``h264`` names libx264 too), sorted by name."""
    found = {c.name: c for c in map(video_encoder, av.codecs_available) if c is not None}
    return [found[n] for n in sorted(found)]


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 goes to /dev/null: some encoder libraries write there directly, not via FFmpeg's log."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
