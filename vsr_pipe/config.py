"""Configuration as frozen dataclasses, parsed once at the edge and passed down."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from .errors import InvalidOption

MIN_UPSCALE, MAX_UPSCALE = 1.0, 8.0
# The invertible rescaler: down by 1/4 to 1, and its inverse up by 1 to 4.
IRN_MIN_DOWN, IRN_MAX_UP = 0.25, 4.0
MAX_OUTPUT_SIDE = 16384  # beyond this no common encoder accepts the frame
RESAMPLERS = ("bicubic", "lanczos", "bilinear")  # fixed filters: they shrink as well as they grow


@dataclass(frozen=True)
class Scale:
    """Per-axis scale factors; ``Scale(1.5, 2.0)`` is 1.5 wide and 2 high."""

    x: float
    y: float

    @classmethod
    def parse(cls, text: str | float | Scale) -> Scale:
        """'2', '1.5', '1.5x2' (width x height) or a number."""
        if isinstance(text, Scale):
            return text
        if isinstance(text, (int, float)):
            return cls(float(text), float(text))
        parts = re.split(r"[x:*]", str(text).strip().lower())
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InvalidOption(f"scale '{text}' is not a number or WxH pair like 1.5x2") from None
        if len(values) == 1:
            values = values * 2
        if len(values) != 2 or not all(math.isfinite(v) for v in values):
            raise InvalidOption(f"scale '{text}' is not a number or WxH pair like 1.5x2")
        return cls(values[0], values[1])

    def check_range(
        self, low: float = MIN_UPSCALE, high: float = MAX_UPSCALE, hint: str = "", what: str | None = None
    ) -> Scale:
        """``what`` names the value in the message (an output size whose factors these are)."""
        if not (low <= self.x <= high and low <= self.y <= high):
            raise InvalidOption(f"{what or f'scale {self}'} is out of range: {_fmt(low)} to {_fmt(high)}{hint}")
        return self

    def check_for(self, model: str, what: str | None = None) -> Scale:
        """The range ``model`` takes: irn goes down (1/4 to 1) or up (1 to 4); the resamplers (bicubic,
        lanczos, bilinear) 1/8 to 8 either way; espcn (and auto) only up, 1 to 8: it cannot shrink."""
        if model in RESAMPLERS:
            return self.check_range(1 / MAX_UPSCALE, MAX_UPSCALE, what=what)
        if model != "irn":
            hint = " (to downscale, use --model irn or bicubic)" if min(self.x, self.y) < 1 else ""
            return self.check_range(hint=hint, what=what)
        if self.x <= 1 and self.y <= 1:
            return self.check_range(IRN_MIN_DOWN, 1.0, what=what)
        if self.x >= 1 and self.y >= 1:
            return self.check_range(1.0, IRN_MAX_UP, what=what)
        raise InvalidOption(
            f"{what or f'scale {self}'}: irn rescales both axes the same way, down (0.25 to 1) or up (1 to 4)"
        )

    @property
    def is_downscale(self) -> bool:
        return self.x <= 1 and self.y <= 1 and (self.x < 1 or self.y < 1)

    @property
    def is_uniform(self) -> bool:
        return self.x == self.y

    def __str__(self) -> str:
        return _fmt(self.x) if self.is_uniform else f"{_fmt(self.x)}x{_fmt(self.y)}"


def parse_time(text: str | float) -> float:
    """Seconds from '12.5', '1:30' or '01:02:03.250' (FFmpeg's -ss/-t forms)."""
    parts = str(text).strip().split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not 1 <= len(values) <= 3 or not all(math.isfinite(v) and v >= 0 for v in values):
        raise InvalidOption(f"time '{text}' is not seconds or HH:MM:SS[.ms] like 90 or 00:01:30.5")
    seconds = 0.0
    for v in values:
        seconds = seconds * 60 + v
    return seconds


def _fmt(v: float) -> str:
    return f"{v:g}"


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080)."""
    m = re.fullmatch(r"\s*(\d+)\s*[x:*]\s*(\d+)\s*", str(text).lower())
    if not m:
        raise InvalidOption(f"size '{text}' is not WIDTHxHEIGHT like 1920x1080")
    w, h = int(m.group(1)), int(m.group(2))
    if not (1 <= w <= MAX_OUTPUT_SIDE and 1 <= h <= MAX_OUTPUT_SIDE):
        raise InvalidOption(f"size {w}x{h} is out of range: 1 to {MAX_OUTPUT_SIDE} per side")
    return w, h


def output_size(width: int, height: int, scale: Scale, align_x: int = 1, align_y: int = 1) -> tuple[int, int]:
    """Input size times the factors, rounded to the nearest integer, then to the alignment
    (2 for subsampled chroma) that the output pixel format needs."""
    w = _round_to(width * scale.x, align_x)
    h = _round_to(height * scale.y, align_y)
    if max(w, h) > MAX_OUTPUT_SIDE:
        raise InvalidOption(f"output {w}x{h} is too large: at most {MAX_OUTPUT_SIDE} pixels per side")
    return w, h


def _round_to(value: float, multiple: int) -> int:
    n = int(math.floor(value + 0.5))
    if multiple > 1:
        n = max(multiple, int(math.floor(n / multiple + 0.5)) * multiple)
    return max(n, 1)


@dataclass(frozen=True)
class EncodeOptions:
    """How the output video is encoded and muxed."""

    codec: str = "libx264"
    crf: float | None = 18
    preset: str | None = None
    pix_fmt: str | None = None  # None: the input's, if the codec takes it
    container_format: str | None = None  # None: from the output file's extension
    codec_options: tuple[tuple[str, str], ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()  # extra container tags
    muxer_options: tuple[tuple[str, str], ...] = ()  # FFmpeg format/protocol options of the output
    low_latency: bool = False  # no B-frames, no look-ahead (x264/x265 zerolatency), packets flushed at once
    audio: bool = True  # copy the input's audio streams (FFmpeg's -an turns it off)
    subtitles: bool = True  # copy the input's subtitle streams (-sn)
    overwrite: bool = True  # replace an existing output file, as a rename over it always did (-n: refuse)

    def __post_init__(self) -> None:
        low, high = crf_range(self.codec)
        if self.crf is not None and not low <= self.crf <= high:
            raise InvalidOption(f"crf {self.crf:g} is out of range for {self.codec}: {low} to {high}")


# The CRF (NVENC: cq) each encoder takes; "auto" is NVENC H.264 or libx264. Others ignore a CRF.
_CRF_RANGES = {"libx264": (0, 51), "libx265": (0, 51), "auto": (0, 51), "libvpx-vp9": (0, 63),
               "libaom-av1": (0, 63), "libsvtav1": (0, 63)}  # fmt: skip


def crf_range(codec: str) -> tuple[float, float]:
    """The CRF values ``codec`` accepts (any, for an encoder that takes none)."""
    if codec.endswith("_nvenc"):
        return 0, 51
    return _CRF_RANGES.get(codec, (-math.inf, math.inf))


@dataclass(frozen=True)
class SourceOptions:
    """How the input is opened: FFmpeg format and protocol options, and what to do when a network
    input stalls or disconnects.

    ``reconnect_timeout_s``: for URL inputs, reopen a stream that ended or stalled for this long
    before giving up (0: don't). ``read_timeout_s``: how long a read may wait for data before the
    input counts as stalled. ``start_s``/``duration_s``: read only the frames whose timestamps lie
    in [start, start + duration) seconds after the video stream's start (FFmpeg's -ss and -t);
    the kept frames and packets move back by ``start_s``, so the output starts where the input does.
    """

    format: str | None = None  # None: probed
    options: tuple[tuple[str, str], ...] = ()
    reconnect_timeout_s: float = 0.0
    read_timeout_s: float = 5.0
    start_s: float = 0.0
    duration_s: float | None = None  # None: to the end

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_s) and self.start_s >= 0):
            raise InvalidOption(f"start {self.start_s:g} s is out of range: 0 or more")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise InvalidOption(f"duration {self.duration_s:g} s is out of range: more than 0")
        if self.reconnect_timeout_s < 0 or self.read_timeout_s <= 0:
            raise InvalidOption(
                f"reconnect timeout {self.reconnect_timeout_s:g} s / read timeout {self.read_timeout_s:g} s: "
                "need >= 0 and > 0"
            )


@dataclass(frozen=True)
class LiveOptions:
    """A live run: every frame is due ``max_latency_ms`` after it arrived. A chunk that would miss
    its deadline runs on a cheaper path (the fallbacks, then bicubic) until there is headroom again.
    With ``drop``, frames the pipeline has no room for are dropped (and counted) instead of
    making the input wait."""

    max_latency_ms: float = 500.0
    drop: bool = False
    fallback: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_latency_ms <= 600_000:
            raise InvalidOption(f"max latency {self.max_latency_ms:g} ms is out of range: 1 to 600000")


# A model's weights: the path of a safetensors file (a user's own weights), or the bytes of one held
# in memory (``weights.store.model_bytes``: weights built for a run, which no file need hold).
Weights = str | bytes


@dataclass(frozen=True)
class WeightsSwap:
    """From ``start`` on, the model runs with the weights in ``weights``: a safetensors file's path,
    its bytes in memory, or a future of either (weights still on their way, fetched while earlier
    chunks play). The model stage waits for a future at ``start`` (a stall, counted) and never runs
    those frames with other weights; a future that ends in an exception ends the run with it."""

    start: int
    weights: Weights | Future

    @property
    def pending(self) -> bool:
        """Whether the weights are still on their way (a future), not in hand."""
        return isinstance(self.weights, Future)


@dataclass(frozen=True)
class WeightSchedule:
    """Which weights the model runs with, over the video: per-chunk overfitted weights swapped in
    mid-stream. Before the first entry the model keeps its own (shipped) weights.

    ``by`` is "pts" (``start`` is a timestamp in the input stream's time base; a model chunk never
    spans a swap, so every frame gets exactly its weights) or "chunk" (``start`` is a chunk index).
    ``base``: weights (a file's path, or a file's bytes) the model stage is built from instead of the
    shipped model (its architecture, and its weights before the first entry); every entry must
    share its architecture.
    ``on_swap``: called with an entry's index when the model stage first needs it (before waiting
    for its weights), so that whoever fetches later entries can pace itself by the one playing.
    """

    swaps: tuple[WeightsSwap, ...]
    by: str = "pts"
    base: Weights | None = None
    on_swap: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        if self.by not in ("pts", "chunk"):
            raise InvalidOption(f"weight schedule by '{self.by}': choose pts or chunk")
        starts = [s.start for s in self.swaps]
        if starts != sorted(set(starts)):
            raise InvalidOption("weight schedule starts must be distinct and in order")

    def entry_at(self, chunk_index: int, pts: int | None) -> int:
        """Index of the swap in force for a frame of chunk ``chunk_index`` at ``pts``; -1: none yet."""
        key = chunk_index if self.by == "chunk" else pts
        if key is None:
            return -1
        found = -1
        for i, swap in enumerate(self.swaps):
            if swap.start <= key:
                found = i
        return found


@dataclass(frozen=True)
class PipelineOptions:
    """What to run and how to schedule it.

    ``chunk_frames`` frames go through the model at once; ``ring_slots`` chunks exist in memory per
    ring, so decoded-but-unprocessed frames are bounded by ``chunk_frames * ring_slots``.
    """

    scale: Scale | None = None  # neither scale nor size: x2, or the size a rescaling tag records
    size: tuple[int, int] | None = None
    model: str = "auto"  # espcn, or irn's inverse on a video that irn made; irn, bicubic, lanczos, bilinear
    engine: str = "auto"
    device: str = "auto"
    precision: str = "auto"  # fp16 on a CUDA device, fp32 elsewhere
    chunk_frames: int = 4
    ring_slots: int = 3
    threads: int = 0  # torch intra-op threads; 0 keeps the default
    tile: int = 0  # input pixels per tile side for the model; 0: whole frames
    refine: int = 0  # irn down: Adam steps on each LR against the inverse (server side; torch engine)
    weights: WeightSchedule | None = None  # weights swapped in mid-stream; None: the shipped ones throughout
    # The input's rescaling tag (io/tags.py's text) where its container keeps none: an HLS LR, whose
    # delivery manifest says what made it. A tag in the input itself comes first.
    rescale_tag: str | None = None
    live: LiveOptions | None = None  # deadlines, fallbacks, latency figures; None: a file job
    realtime: bool = False  # pace the input at its own frame rate, as a camera would deliver it
    source: SourceOptions = field(default_factory=SourceOptions)
    encode: EncodeOptions = field(default_factory=EncodeOptions)

    def __post_init__(self) -> None:
        if self.scale is not None and self.size is not None:
            raise InvalidOption("give scale or size, not both")
        if self.scale is not None:
            self.scale.check_for(self.model)
        if self.chunk_frames < 1 or self.ring_slots < 2:
            raise InvalidOption(
                f"chunk of {self.chunk_frames} frames and {self.ring_slots} slots: need at least 1 frame and 2 slots"
            )
