"""Synthetic test videos written with PyAV only (no ``ffmpeg`` binary needed).

The main entry point is :func:`make_clip`, which writes a short clip whose
pixel values, colour tags, timestamps and side streams are all known, so tests
can check that the pipeline preserves them:

* ``pattern="bars"``: four vertical bars of constant 8-bit Y'CbCr code values
  (:data:`BAR_YUV`) plus a small white square that moves along the bottom 20 %
  of the frame, so the video has motion but the bars' measurement window
  (:data:`MEASURE_ROWS`, centre half of each bar) never sees it.  The planes
  are written directly, never via RGB, so every code value is exact.  The bar
  colours sit well inside the RGB gamut (components 0.16-0.86) under both
  BT.601 and BT.709 matrices and both ranges, so an RGB round trip inside a
  pipeline does not clip them.
* Colour tags (range, matrix, primaries, transfer) go on the encoder context
  and on every frame; the codec and container carry them to the file.
* Constant frame rate by default; ``pts=`` gives exact variable-rate timestamps.
* Optional audio (440 Hz sine), subtitles (two cues) and display rotation.

Timestamp guarantees (checked by ``tests/unit/test_media.py``), for the
default ``max_b_frames=0`` and for B-frames alike (the MP4 edit list and the
Matroska block timestamps both undo the reorder delay; note that Matroska
stores no dts, so with B-frames the first demuxed packets have ``dts=None``):

* MP4/MOV keep the video time base if its denominator is >= 10000 (the
  default 1/90000 is kept), and decoded ``frame.pts`` equal the written pts
  exactly when the first pts is 0.  A non-zero first pts is stored as an edit
  list offset in the movie time scale (1/1000 s), so every pts shifts by the
  same sub-millisecond amount (1000 -> 990 at 1/90000); the gaps stay exact.
  A coarser time base is doubled until >= 10000 (1/24 -> 1/12288, 1/1000 ->
  1/16000); then only ``pts * time_base`` (seconds) is exact.
* Matroska always uses time base 1/1000: pts are rounded to the nearest
  millisecond, so compare seconds with 1 ms tolerance.

:class:`ClipInfo` reports what was read back from the file, so tests can use
``info.pts`` / ``info.time_base`` instead of re-deriving them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

# Four bars, left to right, as 8-bit (Y, Cb, Cr) code values: orange, olive,
# blue, purple.  Every component differs by >= 10 codes between bars so a
# swapped or mis-scaled plane is visible.
BAR_YUV: tuple[tuple[int, int, int], ...] = (
    (150, 100, 160),
    (120, 90, 120),
    (100, 160, 105),
    (80, 135, 150),
)
# The moving square: peak white, neutral chroma.
SQUARE_YUV: tuple[int, int, int] = (235, 128, 128)
# Rows measured by mean_bar_yuv, as fractions of frame height.  The moving
# square lives below MOTION_TOP, so the window never includes it.
MEASURE_ROWS: tuple[float, float] = (0.10, 0.70)
MOTION_TOP: float = 0.80

# Pixel formats make_clip can synthesise: name -> (chroma x shift, y shift,
# has chroma, bit depth).
_FORMATS: dict[str, tuple[int, int, bool, int]] = {
    "yuv420p": (1, 1, True, 8),
    "yuv422p": (1, 0, True, 8),
    "yuv444p": (0, 0, True, 8),
    "yuv420p10le": (1, 1, True, 10),
    "yuv422p10le": (1, 0, True, 10),
    "yuv444p10le": (0, 0, True, 10),
    "gray": (0, 0, False, 8),
    "gray10le": (0, 0, False, 10),
}

# FFmpeg enum values (AVColorRange, AVColorSpace, AVColorPrimaries,
# AVColorTransferCharacteristic).  Plain ints: PyAV's reformatter enums lack
# SMPTE170M and there is no enum at all for primaries/transfer.
_RANGE = {"limited": 1, "full": 2}  # MPEG, JPEG
# bt601 means the 525-line (NTSC) flavour, SMPTE 170M, for all three tags;
# its matrix equals BT.470BG's (5), which decoders may also report.
_SPACE = {"bt709": (1, 1, 1), "bt601": (6, 6, 6)}  # (matrix, primaries, trc)

# Minimal ASS header (FFmpeg's default).  FFmpeg's text subtitle encoders
# parse it at open and fail with "Invalid data" when it is missing.
_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n"
    b"[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, "
    b"SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, "
    b"StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
    b"Alignment, MarginL, MarginR, MarginV, Encoding\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,"
    b"2,10,10,10,1\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, "
    b"MarginV, Effect, Text\n"
)

_AUDIO_RATE = 48_000  # Hz
_AUDIO_FREQ = 440.0  # Hz


@dataclass(frozen=True)
class ClipInfo:
    """What :func:`make_clip` wrote, with timing read back from the file.

    ``pts`` are the decoded video frames' pts in ``time_base`` (the file's
    video stream time base, which may differ from the one requested - see the
    module docstring).  ``bars`` holds ``(x0, x1, (y, u, v))`` per bar: the
    luma column range ``[x0, x1)`` at the clip's width and the 8-bit code
    values.  ``has_audio``, ``audio_packets``, ``has_subtitles`` and
    ``rotation`` (degrees counter-clockwise in [0, 360), 0 when none) are
    also read back.
    """

    path: Path
    width: int
    height: int
    frames: int
    pix_fmt: str
    codec: str
    pts: tuple[int, ...]
    time_base: Fraction
    color_range: str
    colorspace: str
    bars: tuple[tuple[int, int, tuple[int, int, int]], ...]
    has_audio: bool
    audio_packets: int
    has_subtitles: bool
    rotation: int


def bar_layout(width: int) -> tuple[tuple[int, int, tuple[int, int, int]], ...]:
    """Return ``(x0, x1, (y, u, v))`` per bar for a frame ``width`` pixels wide.

    Inner edges are rounded down to even columns so that 4:2:0 / 4:2:2 chroma
    samples never straddle two bars.
    """
    n = len(BAR_YUV)
    edges = [0] + [(i * width // n) & ~1 for i in range(1, n)] + [width]
    return tuple((edges[i], edges[i + 1], BAR_YUV[i]) for i in range(n))


def _pick_codec(codec: str | None, width: int, height: int, pix_fmt: str) -> str:
    """Return the encoder to use: ``None`` means libx264 where it round-trips, else FFV1."""
    sx, sy, has_chroma, _ = _FORMATS[pix_fmt]
    # x264 rejects sizes that are not a multiple of the chroma subsampling
    # ("width not divisible by 2").  FFV1 (lossless) codes any size.
    x264_ok = not has_chroma or (width % (1 << sx) == 0 and height % (1 << sy) == 0)
    if codec is None:
        # x264 codes gray as monochrome H.264, which FFmpeg decodes as yuv420p
        # (U=V=128) with the matrix tag dropped; FFV1 decodes back to gray.
        return "libx264" if x264_ok and has_chroma else "ffv1"
    if codec == "libx264" and not x264_ok:
        raise ValueError(
            f"libx264 cannot encode {pix_fmt} at {width}x{height} (odd size); use codec='ffv1' or codec=None"
        )
    return codec


def _fill_planes(
    frame: av.VideoFrame,
    index: int,
    pix_fmt: str,
    bars: Sequence[tuple[int, int, tuple[int, int, int]]],
) -> None:
    """Write the bars + moving square for frame ``index`` straight into ``frame``."""
    sx, sy, has_chroma, depth = _FORMATS[pix_fmt]
    w, h = frame.width, frame.height
    full = np.empty((3, h, w), np.uint16)  # Y, U, V at luma resolution
    for x0, x1, yuv in bars:
        full[:, :, x0:x1] = np.asarray(yuv, np.uint16)[:, None, None]
    # Even size and position keep the square aligned to chroma samples.
    side = max(2, (h // 10) & ~1)
    top = math.ceil(h * MOTION_TOP)
    y0 = min(h - side, top + max(0, h - top - side) // 2) & ~1
    y0 = max(y0, 0)
    x0 = (index * 4) % max(1, w - side) & ~1
    full[:, y0 : y0 + side, x0 : x0 + side] = np.asarray(SQUARE_YUV, np.uint16)[:, None, None]
    if depth > 8:
        full <<= depth - 8  # 10-bit code = 8-bit code x 4
    dtype = np.dtype("<u2") if depth > 8 else np.dtype(np.uint8)
    for p, plane in enumerate(frame.planes if has_chroma else frame.planes[:1]):
        # Point-sample the luma-resolution image: [::2] yields ceil(w/2)
        # columns, exactly the chroma plane size FFmpeg uses for odd widths.
        src = full[p] if p == 0 else full[p, :: 1 << sy, :: 1 << sx]
        assert src.shape == (plane.height, plane.width), (src.shape, plane)
        # Writable view of the plane buffer; rows are line_size bytes (padded).
        view = np.frombuffer(plane, dtype).reshape(plane.height, -1)
        view[:, : plane.width] = src


def _audio_codec(path: Path) -> str:
    """AAC where MP4/MOV/MPEG-TS expect it, FLAC (lossless) elsewhere."""
    return "aac" if path.suffix.lower() in {".mp4", ".m4v", ".mov", ".ts", ".m2ts"} else "flac"


def _subtitle_codec(path: Path) -> str:
    """mov_text is the only text subtitle MP4/MOV accept; SubRip for Matroska."""
    return "mov_text" if path.suffix.lower() in {".mp4", ".m4v", ".mov"} else "subrip"


def make_clip(
    path: str | Path,
    *,
    width: int = 160,
    height: int = 96,
    frames: int = 24,
    fps: int | Fraction = 24,
    pix_fmt: str = "yuv420p",
    codec: str | None = None,
    crf: int | None = None,
    color_range: Literal["limited", "full"] = "limited",
    colorspace: Literal["bt709", "bt601"] = "bt709",
    pts: Sequence[int] | None = None,
    time_base: Fraction = Fraction(1, 90_000),
    max_b_frames: int = 0,
    gop_size: int = 12,
    audio: bool = True,
    subtitles: bool = False,
    rotation: int | None = None,
    pattern: Literal["bars"] = "bars",
) -> ClipInfo:
    """Write a synthetic clip to ``path`` (container chosen by its suffix).

    ``width``/``height`` are pixels (odd sizes allowed), ``fps`` frames per
    second.  ``codec=None`` picks libx264, or FFV1 when x264 cannot take the
    size (odd 4:2:0/4:2:2).  ``crf=None`` encodes losslessly (x264 ``qp=0``;
    FFV1 is always lossless).  ``pts`` are explicit frame timestamps in
    ``time_base`` units (strictly increasing; overrides ``frames``/``fps``)
    for variable frame rate.  ``max_b_frames`` > 0 makes x264 reorder frames;
    it needs a ``crf`` (x264 never emits B-frames when lossless; the flat
    bars still decode exactly at crf 10).  ``rotation`` is degrees
    counter-clockwise, stored as a display matrix.  Audio is a 440 Hz mono
    sine at 48 kHz for the clip's duration.
    """
    path = Path(path)
    if pattern != "bars":
        raise ValueError(f"unknown pattern {pattern!r}")
    if pix_fmt not in _FORMATS:
        raise ValueError(f"unsupported pix_fmt {pix_fmt!r}; one of {sorted(_FORMATS)}")
    time_base = Fraction(time_base)
    fps = Fraction(fps)
    if pts is None:
        pts = [round(i / fps / time_base) for i in range(frames)]
    pts = [int(p) for p in pts]
    if any(b <= a for a, b in zip(pts, pts[1:], strict=False)):
        raise ValueError("pts must be strictly increasing")
    codec = _pick_codec(codec, width, height, pix_fmt)
    if codec == "libx264" and max_b_frames and crf is None:
        # Fail loudly rather than hand back a clip silently without B-frames.
        raise ValueError("lossless libx264 never emits B-frames; pass crf (e.g. 10) with max_b_frames")
    bars = bar_layout(width)
    c_range = _RANGE[color_range]
    c_space, c_prim, c_trc = _SPACE[colorspace]
    # Clip length in seconds: last frame lasts one nominal frame interval.
    frame_dur = pts[1] - pts[0] if len(pts) > 1 else round(1 / fps / time_base)
    duration = (pts[-1] - pts[0] + frame_dur) * time_base

    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=fps)
        cc = vs.codec_context
        cc.width, cc.height, cc.pix_fmt = width, height, pix_fmt
        cc.time_base = time_base
        vs.time_base = time_base  # a hint; MKV still forces 1/1000
        cc.gop_size = gop_size
        cc.max_b_frames = max_b_frames
        cc.color_range = c_range
        cc.colorspace = c_space
        cc.color_primaries = c_prim
        cc.color_trc = c_trc
        if codec == "libx264":
            # ultrafast keeps test setup cheap; FFmpeg's wrapper applies
            # max_b_frames after the preset, so B-frames still happen if asked.
            cc.options = {"preset": "ultrafast"} | ({"qp": "0"} if crf is None else {"crf": str(crf)})
        elif codec == "libvpx-vp9":  # lossy-or-lossless odd-size option for MP4
            quality = {"lossless": "1"} if crf is None else {"crf": str(crf), "b": "0"}
            cc.options = {"deadline": "realtime", "cpu-used": "8"} | quality
        if rotation:
            vs.set_display_rotation(rotation)  # must precede the first encode

        astream = None
        if audio:
            astream = out.add_stream(_audio_codec(path), rate=_AUDIO_RATE)
            astream.codec_context.layout = "mono"
        sstream = None
        if subtitles:
            sstream = out.add_stream(_subtitle_codec(path))
            sstream.codec_context.time_base = Fraction(1, 1000)
            sstream.codec_context.subtitle_header = _ASS_HEADER

        for i, p in enumerate(pts):
            frame = av.VideoFrame(width, height, pix_fmt)
            _fill_planes(frame, i, pix_fmt, bars)
            frame.pts, frame.time_base = p, time_base
            # Frame tags too: encoders and filters may read either.
            frame.color_range = c_range
            frame.colorspace = c_space
            frame.color_primaries = c_prim
            frame.color_trc = c_trc
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))

        if astream is not None:
            _write_sine(out, astream, duration)
        if sstream is not None:
            _write_cues(out, sstream, duration)

    return _read_back(path, pix_fmt, codec, color_range, colorspace, bars)


def make_mpeg2_ts(
    path: str | Path, *, width: int = 160, height: int = 96, frames: int = 12, color_range: str = "limited"
) -> Path:
    """Write an MPEG-TS of MPEG-2 video (bars, 25 fps) and MP2 audio, as broadcast and DVD rips are.

    Only the range is tagged: matrix, primaries and transfer stay unspecified, as in most MPEG-2
    streams (no sequence display extension).
    """
    path = Path(path)
    with av.open(str(path), "w", format="mpegts") as out:
        vs = out.add_stream("mpeg2video", rate=25)
        cc = vs.codec_context
        cc.width, cc.height, cc.pix_fmt, cc.color_range = width, height, "yuv420p", _RANGE[color_range]
        astream = out.add_stream("mp2", rate=_AUDIO_RATE)
        astream.codec_context.layout = "mono"
        bars = bar_layout(width)
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            _fill_planes(frame, i, "yuv420p", bars)
            frame.pts, frame.time_base, frame.color_range = i, Fraction(1, 25), _RANGE[color_range]
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        _write_sine(out, astream, Fraction(frames, 25))
    return path


def _write_sine(out: av.container.OutputContainer, stream: av.AudioStream, seconds: Fraction) -> None:
    """Encode ``seconds`` of a 440 Hz sine (amplitude 0.25) into ``stream``."""
    cc = stream.codec_context
    fmt = cc.format.name  # aac: fltp, flac: s16
    chunk = 1024  # samples per frame we hand over; PyAV re-chunks to the encoder's frame_size
    total = int(seconds * _AUDIO_RATE)
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / _AUDIO_RATE).astype(np.float64)
        wave = 0.25 * np.sin(2 * np.pi * _AUDIO_FREQ * t)
        data = wave.astype(np.float32) if fmt.startswith("flt") else (wave * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(data[None, :], format=fmt, layout="mono")
        frame.sample_rate = _AUDIO_RATE
        frame.pts, frame.time_base = start, Fraction(1, _AUDIO_RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _write_cues(
    out: av.container.OutputContainer, stream: av.subtitles.stream.SubtitleStream, seconds: Fraction
) -> None:
    """Write two text cues covering 0-40 % and 50-90 % of the clip."""
    from av.subtitles.subtitle import SubtitleSet

    ms = int(seconds * 1000)
    cues = ((0, ms * 4 // 10, "First cue"), (ms // 2, ms * 9 // 10, "Second cue"))
    for start, end, text in cues:
        # Text is an ASS "Dialogue" payload minus the timing fields; FFmpeg
        # requires start_display_time 0, so the start goes in pts (ms here).
        sub = SubtitleSet.create(f"0,0,Default,,0,0,0,,{text}".encode(), 0, end - start, start)
        packet = stream.codec_context.encode_subtitle(sub)
        packet.stream = stream
        packet.time_base = Fraction(1, 1000)  # mux() rescales to the stream's
        out.mux(packet)


def _read_back(
    path: Path,
    pix_fmt: str,
    codec: str,
    color_range: str,
    colorspace: str,
    bars: tuple[tuple[int, int, tuple[int, int, int]], ...],
) -> ClipInfo:
    """Decode ``path`` and build its :class:`ClipInfo`."""
    with av.open(str(path)) as inp:
        vs = inp.streams.video[0]
        time_base = Fraction(vs.time_base)
        decoded = list(inp.decode(vs))
    with av.open(str(path)) as inp:
        has_audio = bool(inp.streams.audio)
        has_subtitles = bool(inp.streams.subtitles)
        audio_packets = 0
        if has_audio:
            audio_packets = sum(1 for pk in inp.demux(inp.streams.audio[0]) if pk.size)
    first = decoded[0]
    return ClipInfo(
        path=path,
        width=first.width,
        height=first.height,
        frames=len(decoded),
        pix_fmt=pix_fmt,
        codec=codec,
        pts=tuple(int(f.pts) for f in decoded),
        time_base=time_base,
        color_range=color_range,
        colorspace=colorspace,
        bars=bars,
        has_audio=has_audio,
        audio_packets=audio_packets,
        has_subtitles=has_subtitles,
        rotation=round(first.rotation) % 360,  # PyAV reports (-180, 180]
    )


def read_frames(path: str | Path) -> list[av.VideoFrame]:
    """Decode every frame of the first video stream of ``path``."""
    with av.open(str(path)) as inp:
        return list(inp.decode(video=0))


def frame_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Return each plane of ``frame`` as a 2-D array (line padding removed).

    uint8 for 8-bit formats, uint16 for 9-16-bit ones (native code values).
    """
    deep = any(c.bits > 8 for c in frame.format.components)
    dtype = np.dtype("<u2") if deep else np.dtype(np.uint8)
    return [np.frombuffer(pl, dtype).reshape(pl.height, -1)[:, : pl.width].copy() for pl in frame.planes]


def mean_bar_yuv(
    planes: Sequence[np.ndarray],
    bar: tuple[int, int, tuple[int, int, int]],
    width: int,
    *,
    bit_depth: int | None = None,
) -> tuple[float, ...]:
    """Mean code value per plane in the centre of ``bar``, in 8-bit units.

    ``planes`` come from :func:`frame_planes` of a decoded frame of any size;
    ``width`` is the clip's original width (the one ``bar`` refers to).  Each
    plane is measured on the centre half of the bar, scaled by
    plane width / ``width``, over :data:`MEASURE_ROWS`.  ``bit_depth`` defaults
    to 8 for uint8 planes and 10 for uint16 ones; values are divided by
    2**(bit_depth - 8).
    """
    x0, x1, _ = bar
    lo, hi = x0 + (x1 - x0) / 4, x1 - (x1 - x0) / 4  # centre half, input px
    means = []
    for plane in planes:
        h, w = plane.shape
        scale = w / width
        c0, c1 = math.floor(lo * scale), max(math.floor(lo * scale) + 1, math.ceil(hi * scale))
        r0, r1 = math.floor(h * MEASURE_ROWS[0]), math.ceil(h * MEASURE_ROWS[1])
        depth = bit_depth or (8 if plane.dtype == np.uint8 else 10)
        means.append(float(plane[r0:r1, c0:c1].mean()) / (1 << (depth - 8)))
    return tuple(means)


def make_corrupt_copy(src: str | Path, dst: str | Path, *, packets: int = 3, seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with ``packets`` video packets overwritten by garbage.

    The packets are consecutive, starting at the middle one in decode order;
    their whole payload (found by byte search near the demuxer's reported
    position, so container framing stays intact) becomes seeded random bytes.
    The file still opens and demuxes every packet; decoding the hit packets
    raises ``av.InvalidDataError`` (H.264: invalid NAL sizes) and frames that
    reference them up to the next keyframe may be dropped.
    """
    data = bytearray(Path(src).read_bytes())
    with av.open(str(src)) as inp:
        payloads = [(pk.pos, bytes(pk)) for pk in inp.demux(video=0) if pk.size]
    rng = np.random.default_rng(seed)
    mid = len(payloads) // 2
    for pos, payload in payloads[mid : mid + packets]:
        start = data.find(payload, max(0, pos))
        if start < 0:
            raise RuntimeError(f"packet payload not found in {src}")
        data[start : start + len(payload)] = rng.integers(0, 256, len(payload), np.uint8).tobytes()
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def make_damaged_slices_copy(src: str | Path, dst: str | Path, *, packets: int = 2, flips: int = 8, seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with ``flips`` bytes inverted inside each of its ``packets`` largest
    video packets (the first one spared).

    Only the back two thirds of a payload are touched, so NAL sizes and slice headers stay intact:
    the decoder takes every packet, conceals the damaged macroblocks and flags those frames
    (``frame.is_corrupt``), where :func:`make_corrupt_copy` makes it refuse packets.
    """
    data = bytearray(Path(src).read_bytes())
    with av.open(str(src)) as inp:
        payloads = [(pk.pos, bytes(pk)) for pk in inp.demux(video=0) if pk.size][1:]
    rng = np.random.default_rng(seed)
    for pos, payload in sorted(payloads, key=lambda p: -len(p[1]))[:packets]:
        start = data.find(payload, max(0, pos))
        if start < 0:
            raise RuntimeError(f"packet payload not found in {src}")
        for offset in rng.integers(len(payload) // 3, len(payload), flips):
            data[start + offset] ^= 0xFF
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def make_truncated_copy(src: str | Path, dst: str | Path, fraction: float = 0.6) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst``.

    Matroska keeps playing up to the cut.  An MP4 from :func:`make_clip` has
    its index (moov) at the end, so a truncated copy cannot be opened at all -
    which is also what a truncated real-world download looks like.
    """
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)
