"""Writing video with PyAV: encode planes, copy other streams, finish atomically.

A file output goes to a temporary file beside the target and is renamed over it only when complete,
so the target is never half-written and the input is never touched. Standard output and URLs
(anything FFmpeg writes by protocol) are written as they go.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..config import EncodeOptions
from ..errors import EncoderUnavailable, InvalidOption, OutputError, OutputExists
from .base import ColorInfo, Packet
from .decode import AvSource, is_url, layout_for
from .encoders import X264_INFO, encoder_opens, software_encoders_like, without_sei, x264_info_removable, x265_params
from .layout import FrameLayout
from .protocols import protocol_support
from .tags import TAG


@dataclass(frozen=True)
class OutputSpec:
    """The output video stream: its size and pixel format, timing, and tags."""

    layout: FrameLayout
    time_base: Fraction
    average_rate: Fraction | None
    color: ColorInfo
    rotation: int = 0
    metadata: tuple[tuple[str, str], ...] = ()  # the input video stream's tags (language, title, ...)


def check_output_path(dst: str | os.PathLike, src: str | os.PathLike | None, overwrite: bool = True) -> Path | None:
    """Refuse an output that would overwrite the input or cannot be written, or that exists when
    ``overwrite`` is off; None for stdout."""
    if str(dst) == "-" or is_url(str(dst)):
        return None
    target = Path(dst)
    if src is not None and str(src) != "-":
        source = Path(src)
        if target.resolve() == source.resolve() or (target.exists() and source.exists() and target.samefile(source)):
            raise OutputError(f"output {target} is the input: choose another name")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")
    if target.is_dir():
        raise OutputError(f"output {target} is a folder")
    if not overwrite and target.exists():
        raise OutputExists(f"output {target} exists: not overwritten (-n; -y replaces it)")
    return target


def resolve_codec(codec: str) -> str:
    """``auto``: NVENC H.264 where a GPU encoder really opens here (FFmpeg lists it even without a
    GPU), else libx264. Any other name is returned as it is."""
    if codec != "auto":
        return codec
    return "h264_nvenc" if encoder_opens("h264_nvenc") else "libx264"


def open_encoder(ctx: av.CodecContext) -> None:
    """Open a configured encoder now, so that one this machine cannot run fails before any frame, in
    one line: a hardware encoder with no device names the software ones that open here."""
    try:
        ctx.open()
    except (av.error.FFmpegError, ValueError) as e:
        if encoder_opens(ctx.name):  # it opens bare here: the settings are what it refuses
            raise InvalidOption(f"encoder {ctx.name} refuses these settings: {getattr(e, 'strerror', None) or e}") from None
        others = ", ".join(software_encoders_like(ctx.name)) or "none"
        raise EncoderUnavailable(
            f"encoder {ctx.name} does not open on this machine (no device or driver for it); "
            f"{ctx.codec.canonical_name} encoders that do: {others}"
        ) from None


def output_format(encode: EncodeOptions, source_layout: FrameLayout) -> FrameLayout:
    """The output's pixel format as a layout (of the source's size; the plan sets the size)."""
    name = pick_pix_fmt(encode.codec, encode.pix_fmt, source_layout.pix_fmt)
    return layout_for(name, source_layout.width, source_layout.height, source_layout.full_range)


def pick_pix_fmt(codec: str, wanted: str | None, input_fmt: str) -> str:
    """``wanted`` if given (checked), else the input's if the codec takes it, else its closest."""
    try:
        formats = [f.name for f in (av.codec.Codec(codec, "w").video_formats or [])]
    except Exception:
        raise InvalidOption(f"codec '{codec}' is not an encoder this FFmpeg has (try libx264, libx265, ffv1)") from None
    if wanted:
        if formats and wanted not in formats:
            raise InvalidOption(f"codec {codec} cannot write pixel format {wanted}: it takes {', '.join(formats)}")
        return wanted
    candidates = [input_fmt, input_fmt.replace("yuvj", "yuv")]
    if "10le" in input_fmt or "12le" in input_fmt:
        candidates.append(input_fmt[:-4] + "10le")
    candidates += ["yuv420p"]
    for name in candidates:
        if not formats or name in formats:
            return name
    return formats[0]


class AvSink:
    """An output (file, ``"-"`` for standard output, or a URL) being written.

    ``with AvSink(...) as sink:`` finishes it on a normal exit and aborts it on an exception; or
    call :meth:`finish` or :meth:`abort` exactly once. ``copy_from`` is the source whose audio and
    subtitle streams are stream-copied, with its chapters.
    """

    def __init__(
        self,
        dst: str | os.PathLike,
        plan: OutputSpec,
        options: EncodeOptions,
        copy_from: AvSource | None = None,
        metadata: dict | None = None,
        keyframes: frozenset[int] = frozenset(),
    ):
        """``keyframes``: pts of frames that must start a closed GOP (an IDR for x264/x265), e.g.
        where each chunk of a delivery package must decode on its own."""
        metadata = metadata or {}
        self.keyframes = frozenset(int(k) for k in keyframes)
        if self.keyframes and options.codec in ("libx264", "libx265"):
            if "forced-idr" not in dict(options.codec_options):
                options = dataclasses.replace(options, codec_options=(*options.codec_options, ("forced-idr", "1")))
        self.options = options
        self.plan = plan
        self.frames_written = 0
        self.packets_skipped = 0  # copied packets left out: they went back in time
        self._last_dts: dict = {}
        self.pts_mended = 0  # frames whose timestamp repeated or went back (a damaged input): moved on by one
        self._last_pts: int | None = None
        self._keyframe_s = 0.0  # an HLS output's segment length: a keyframe starts each one
        self._info_pending = x264_info_removable(options.codec, dict(options.codec_options))
        self._closed = False
        dst = str(dst)
        hls = dst.lower().endswith(".m3u8") and not is_url(dst)
        # A live playlist is read while it is written, so it is written in place, not renamed.
        self.target = None if dst == "-" or is_url(dst) or hls else Path(dst)
        self._label = "standard output" if dst == "-" else dst
        fmt = options.container_format or ("hls" if hls else None)
        if self.target is None and not fmt:
            raise InvalidOption(
                f"writing to {self._label} needs a container format: -f FORMAT (e.g. -f matroska, -f mpegts)"
            )
        if self.target is None:
            self.path = None
            out_file = sys.stdout.buffer if dst == "-" else dst
        else:
            self.path = self.target.with_name(f".{self.target.stem}.partial-{os.getpid()}{self.target.suffix}")
            out_file = str(self.path)
        opts = self._muxer_options(fmt or self.target.suffix.lstrip("."), metadata)
        try:
            self.container = av.open(out_file, mode="w", format=fmt, options=opts)
        except av.error.ProtocolNotFoundError:
            raise OutputError(f"cannot create {dst}: {protocol_support(dst)}") from None
        except (av.error.FFmpegError, ValueError, OSError) as e:
            raise OutputError(f"cannot create {dst}: {e}") from None
        try:
            self._add_video_stream()
            kept = {"audio": options.audio, "subtitle": options.subtitles}
            copied = [s for s in (copy_from.copied_streams if copy_from else []) if kept.get(s.type, True)]
            self.stream_map = self._add_copied_streams(copied)
            self.container.metadata.update({k: v for k, v in metadata.items() if v is not None})
            chapters = copy_from.chapters() if copy_from else None
            if chapters:
                self.container.set_chapters(chapters)
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> AvSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        try:
            if exc_type is None:
                self.finish()
                return
        except BaseException:  # a signal before finish() took over: no partial file either
            self.abort()
            raise
        self.abort()  # an error, or a second Ctrl-C: no file rather than a broken one

    def _muxer_options(self, kind: str, metadata: dict) -> dict:
        opts = {}
        kind = kind.lower()
        if kind in ("mp4", "mov", "m4v") and any(k.lower() == TAG for k in metadata):
            opts["movflags"] = "use_metadata_tags"  # MP4 drops custom tags otherwise
        if kind == "hls":  # every segment stays listed, so the playlist plays back to the last frame
            opts.update({"hls_time": "1" if self.options.low_latency else "2", "hls_list_size": "0"})
        if kind == "hls":
            self._keyframe_s = float(dict(self.options.muxer_options).get("hls_time", opts["hls_time"]))
        if self.options.low_latency:
            opts["flush_packets"] = "1"  # each packet leaves as soon as it is muxed
        for key, value in self.options.muxer_options:
            if key == "movflags" and value.startswith(("+", "-")) and key in opts:
                value = opts[key] + value  # "+faststart" adds to use_metadata_tags rather than replacing it
            opts[key] = value
        return opts

    def _add_video_stream(self) -> None:
        o, p = self.options, self.plan
        codec_options = {}
        if o.crf is not None and o.codec in ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "libaom-av1"):
            codec_options["crf"] = f"{o.crf:g}"
        elif o.crf is not None and o.codec.endswith("_nvenc"):
            codec_options.update({"rc": "vbr", "cq": f"{o.crf:g}"})  # NVENC's constant-quality mode
        if o.preset:
            codec_options["preset"] = o.preset
        if o.low_latency and o.codec in ("libx264", "libx265"):
            codec_options["tune"] = "zerolatency"  # no look-ahead, no B-frames, sliced threads
            # medium cannot hold 720p at 25 fps on two cores beside the model; live encoders run fast presets
            codec_options.setdefault("preset", "veryfast")
        codec_options.update(dict(o.codec_options))
        if o.codec == "libx265":
            codec_options["x265-params"] = x265_params(codec_options.get("x265-params", ""), bool(self.keyframes))
        if o.codec == "libx264" and _range_is_the_only_colour_tag(p.color):
            codec_options["x264-params"] = _x264_range_flag(codec_options.get("x264-params", ""))
        try:
            stream = self.container.add_stream(o.codec, rate=p.average_rate or None, options=codec_options)
        except (av.error.FFmpegError, ValueError) as e:
            raise InvalidOption(f"cannot encode with {o.codec} into {self._name()}: {e}") from None
        ctx = stream.codec_context
        ctx.width, ctx.height = p.layout.width, p.layout.height
        ctx.pix_fmt = p.layout.pix_fmt
        ctx.time_base = p.time_base
        stream.time_base = p.time_base
        ctx.color_primaries = p.color.primaries
        ctx.color_trc = p.color.transfer
        ctx.colorspace = p.color.matrix
        ctx.color_range = p.color.range
        ctx.thread_type = "SLICE" if o.low_latency else "AUTO"  # frame threads hold frames back
        if o.low_latency and "bf" not in codec_options:
            ctx.max_b_frames = 0
        if (o.low_latency or self._keyframe_s) and "g" not in codec_options and p.average_rate:
            # Receivers joining a live stream, and HLS segments, start at keyframes: one every few seconds.
            ctx.gop_size = max(1, round(float(p.average_rate) * (self._keyframe_s or 2.0)))
        if p.rotation:
            stream.set_display_rotation(p.rotation)
        stream.metadata.update(dict(p.metadata))
        open_encoder(ctx)
        self.stream = stream

    def _add_copied_streams(self, streams: list) -> dict:
        mapping = {}
        for s in streams:
            if s.codec_context is None:  # a damaged header: no codec parameters to copy
                print(
                    f"vsr-pipe: warning: {s.type} stream #{s.index} not copied: its codec is unreadable",
                    file=sys.stderr,
                )
                continue
            refused = self._header_refuses(s)
            if refused:  # checked apart: once the real header fails, the whole output is lost
                print(
                    f"vsr-pipe: warning: {s.type} stream #{s.index} not copied: its description is damaged ({refused})",
                    file=sys.stderr,
                )
                continue
            try:
                out = self.container.add_stream_from_template(s)
                config = _aac_config(s.codec_context)
                if config:  # AAC from MPEG-TS carries its config in-band; MKV/MP4 headers need it
                    out.codec_context.extradata = config
            except (av.error.FFmpegError, ValueError) as e:
                print(
                    f"vsr-pipe: warning: {s.type} stream #{s.index} ({s.codec_context.name}) not copied: "
                    f"{self._name()} cannot hold it ({e})",
                    file=sys.stderr,
                )
                continue
            # Language, title and the default/forced/commentary flags are how players offer the track.
            out.metadata.update({k: v for k, v in s.metadata.items() if not _stale_stream_tag(k)})
            out.disposition = s.disposition
            mapping[s.index] = out
        return mapping

    def _header_refuses(self, stream) -> str | None:
        """Why this output's muxer would refuse a header holding ``stream`` (damaged codec parameters,
        e.g. a cut FLAC description), found by writing one into memory; None if it takes it."""
        if self.target is None:  # streams and playlists: their muxers cannot be tried in memory
            return None
        probe = av.open(io.BytesIO(), "w", format=self.container.format.name)
        try:
            try:
                probe.add_stream_from_template(stream)
            except (av.error.FFmpegError, ValueError):
                return None  # a codec this container cannot hold: the real attempt says so
            probe.start_encoding()
            return None
        except (av.error.FFmpegError, ValueError) as e:
            return (getattr(e, "strerror", None) or str(e)).lower()
        finally:
            try:
                probe.close()
            except Exception:  # noqa: BLE001 (only the probe's answer matters)
                pass

    def _name(self) -> str:
        return self._label

    def write(self, planes: list[np.ndarray], pts: int | None) -> None:
        """Encode one frame from its planes (uint8 or uint16 arrays of the plan's layout)."""
        if pts is not None and self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # the muxer needs rising timestamps; a damaged input can repeat one
            self.pts_mended += 1
        self._last_pts = pts if pts is not None else self._last_pts
        frame = video_frame(planes, pts, self.plan.layout, self.plan.time_base)
        frame.color_range = self.plan.color.range
        frame.colorspace = self.plan.color.matrix
        frame.color_primaries = self.plan.color.primaries
        frame.color_trc = self.plan.color.transfer
        if pts is not None and pts in self.keyframes:
            frame.pict_type = av.video.frame.PictureType.I
        self._mux(self._video(self.stream.encode(frame)))
        self.frames_written += 1

    def copy(self, packet: Packet) -> None:
        """Mux an audio or subtitle packet as it is, if its stream was kept."""
        raw = packet.payload
        # By index and the packet's own time base: a packet read before a live input reconnected
        # outlives its container, and PyAV (18.1.1) refuses to read a closed container's stream.
        index = raw.stream_index
        out = self.stream_map.get(index)
        if out is None:
            return
        # A muxer refuses a packet that goes back in time; a glitch in a network input must not end
        # the run, so such a packet is left out.
        dts = None if raw.dts is None or raw.time_base is None else raw.dts * raw.time_base
        last = self._last_dts.get(index)
        if dts is not None and last is not None and dts < last:
            self.packets_skipped += 1
            return
        if dts is not None:
            self._last_dts[index] = dts
        raw.stream = out
        try:
            self.container.mux([raw])
        except av.error.FFmpegError as e:
            if getattr(e, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO):
                raise self._write_error(e) from None
            self.packets_skipped += 1  # a damaged packet the muxer refuses is left out; the run goes on

    def _video(self, packets: list) -> list:
        """The encoder's packets, the first without x264's version SEI (``encoders.without_sei``):
        every byte of a small delivery stream counts, and no player reads it."""
        if not (self._info_pending and packets):
            return packets
        self._info_pending = False
        first = packets[0]
        if X264_INFO not in bytes(first):
            return packets
        stripped = without_sei(self.stream, first)
        for p in stripped:
            p.stream = self.stream
        return [*stripped, *packets[1:]]

    def _mux(self, packets) -> None:
        try:
            self.container.mux(packets)
        except av.error.FFmpegError as e:
            raise self._write_error(e) from None

    def _write_error(self, e: av.error.FFmpegError) -> OutputError:
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return OutputError(
                f"writing {self._name()} failed: the disk is full or a file size limit was hit ({e.strerror})"
            )
        return OutputError(f"writing {self._name()} failed: {e}")

    def finish(self) -> None:
        """Flush the encoder, close the file, and move it into place; no file if no frame was written
        (a run stopped before its first frame)."""
        self._closed = True
        if self.pts_mended or self.packets_skipped:
            print(
                f"vsr-pipe: warning: damaged timestamps or packets: {self.pts_mended} frame(s) re-timed, "
                f"{self.packets_skipped} audio/subtitle packet(s) left out",
                file=sys.stderr,
            )
        try:
            self._mux(self._video(self.stream.encode(None)))
            try:
                self.container.close()  # writes what the muxer still buffers, and the index
            except av.error.FFmpegError as e:
                raise self._write_error(e) from None
            if self.path is not None and not self.frames_written:
                self.path.unlink(missing_ok=True)
            elif self.path is not None:
                os.replace(self.path, self.target)
        except OSError as e:
            self.abort()
            raise e if isinstance(e, OutputError) else OutputError(f"cannot finish {self.target}: {e}") from None
        except BaseException:  # an error, or a second signal while finalising: no file rather than a broken one
            self.abort()
            raise

    def abort(self) -> None:
        """Close and delete the partial output."""
        self._closed = True
        try:
            self.container.close()
        except Exception:
            pass
        if self.path is not None and self.path.exists():
            self.path.unlink()


_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_AAC_OBJECT_TYPES = {"Main": 1, "LC": 2, "SSR": 3, "LTP": 4, "HE-AAC": 5}


def _range_is_the_only_colour_tag(color: ColorInfo) -> bool:
    """Limited range with matrix, primaries and transfer unspecified (2), as MPEG-2 inputs are."""
    return color.range == 1 and color.matrix == color.primaries == color.transfer == 2


def _x264_range_flag(params: str) -> str:
    """x264 writes the range flag only beside colour tags or a video format, and MPEG-TS and MP4 have
    no other place for it: naming a video format ("component") makes x264 write it."""
    if "videoformat" in params:
        return params
    return ":".join(p for p in (params, "videoformat=component") if p)


def _aac_config(ctx) -> bytes | None:
    """The two-byte AudioSpecificConfig of an AAC stream that has none (ADTS in MPEG-TS): object
    type, sampling frequency index, channel configuration (ISO 14496-3 1.6.2.1)."""
    if ctx.name != "aac" or ctx.extradata or ctx.sample_rate not in _AAC_RATES:
        return None
    kind = _AAC_OBJECT_TYPES.get(ctx.profile or "LC", 2)
    rate = _AAC_RATES.index(ctx.sample_rate)
    channels = ctx.layout.nb_channels
    if not 1 <= channels <= 7:
        return None
    return bytes([(kind << 3) | (rate >> 1), ((rate & 1) << 7) | (channels << 3)])


def _stale_stream_tag(key: str) -> bool:
    """Tags the muxer writes itself, or that describe the input file's own statistics."""
    key = key.lower()
    return key in ("duration", "encoder", "number_of_frames", "number_of_bytes", "bps") or key.startswith("_statistics")


def video_frame(planes: list[np.ndarray], pts: int | None, layout: FrameLayout, time_base: Fraction) -> av.VideoFrame:
    """A new ``av.VideoFrame`` holding a copy of the planes, with its pts and time base."""
    frame = av.VideoFrame(layout.width, layout.height, layout.pix_fmt)
    write_planes(frame, planes)
    frame.pts, frame.time_base = pts, time_base
    return frame


def write_planes(frame: av.VideoFrame, planes: list[np.ndarray]) -> None:
    """Copy (h, w) uint8/uint16 arrays into a new frame's planes, respecting line padding."""
    for plane, data in zip(frame.planes, planes):
        itemsize = data.dtype.itemsize
        view = np.frombuffer(plane, dtype=data.dtype).reshape(plane.height, plane.line_size // itemsize)
        view[: data.shape[0], : data.shape[1]] = data
