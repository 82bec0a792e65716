"""A title's bitrate ladder: the resolutions and rates worth shipping, chosen on the hull.

Candidates are the master coded directly at full size over a range of CRFs (an HLS media playlist
each), and delivery packages (``deliver --hls``: an LR at 1/2 or 1/3 of the master's size plus
per-chunk weights) over a range of LR CRFs. Each is measured as a client sees it: its bytes are
what the client fetches for the picture (the video stream's packets over all segments, audio and
container left out, plus a package's weights files and ``manifest.json``), its quality the mean
Y-PSNR per frame (8-bit, whole frame) against the master (a package's as the server measured it
on the decoded LR, in fp32). Kept are the candidates on the convex hull of (bytes, dB) that are
not below the direct encodes' curve at their bytes: a title never ships a rung that is worse than
a direct encode at its bytes. The rest are deleted.

The ladder folder holds ``master.m3u8`` (an HLS master playlist, one variant per rung, by
bandwidth), one folder per rung (``rung_<k>_direct_crf33/video.m3u8`` with its segments, or
``rung_<k>_x2_crf38/`` a ``deliver --hls`` package) and ``ladder.json`` (every candidate, the
rungs and the options). Every rung plays as it is in any HLS player; a package rung restores to
the master's size with its weights (``restore_rung``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..config import EncodeOptions
from ..errors import InputNotFound, InvalidOption, OutputError
from ..quality.rd import RdPoint, convex_hull
from ..weights.shipped import codec_aware_name
from .client import RestoreOptions
from .fit import FitSettings
from .package import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_PLAYLIST_BYTES,
    PackageError,
    expanded,
    load_manifest,
    plain_name,
    playlist_segments,
)
from .server import DeliverOptions

FORMAT = "vsr-pipe-ladder"
VERSION = 1
LADDER = "ladder.json"
MASTER_PLAYLIST = "master.m3u8"
DIRECT_PLAYLIST = "video.m3u8"
DIRECT_SEGMENTS = "video_%04d.ts"
PACKAGE_PLAYLIST = "lr.m3u8"
MAX_LADDER_BYTES = 1 << 20
MAX_CANDIDATES = 1000
KINDS = ("direct", "package")


@dataclass(frozen=True)
class LadderOptions:
    """What ``build_ladder`` tries. ``codec`` and ``preset`` code every candidate; ``direct_crfs``
    the master at full size; ``lr_crfs`` each package's LR at each of ``factors`` (2: half size,
    3: a third; a factor the master's size does not allow is skipped). The packages' deliver
    options are ``extra`` when given (down, rules, fit, max_seconds, threads, ... as it says), else
    a bicubic LR with ``fit``, ``max_seconds`` and ``threads``; then scale, encoder and layout (HLS)
    are set per candidate, ``steps`` > 0 replaces the fit's budget (Adam steps per chunk), and
    ``deliver_options(options, factor, crf)``, when given, may change the result. The direct
    candidates are cut into segments of the packages' ``max_seconds`` (seconds)."""

    codec: str = "libx264"
    preset: str = "medium"
    direct_crfs: tuple[float, ...] = (23, 28, 33, 38, 43, 48)
    lr_crfs: tuple[float, ...] = (28, 33, 38, 43, 48)
    factors: tuple[int, ...] = (2, 3)
    # Compact weights on the codec-aware restorer of each factor (skipped where none ships).
    fit: FitSettings = field(default_factory=lambda: FitSettings(train="modulation"))
    steps: int = 0
    max_seconds: float = 10.0
    threads: int = 0
    extra: DeliverOptions | None = None
    deliver_options: Callable[[DeliverOptions, int, float], DeliverOptions] | None = None

    def check(self) -> None:
        if not self.direct_crfs and not (self.lr_crfs and self.factors):
            raise InvalidOption("a ladder needs candidates: give direct CRFs, or LR CRFs and factors")
        for f in self.factors:
            if f not in (2, 3, 4):
                raise InvalidOption(f"ladder factor {f}: choose 2, 3 or 4")
        for crf in (*self.direct_crfs, *self.lr_crfs):
            EncodeOptions(codec=self.codec, crf=crf)  # refuses a CRF out of the codec's range
        if self.max_seconds <= 0:
            raise InvalidOption(f"max_seconds {self.max_seconds:g}: must be positive")

    def base(self) -> DeliverOptions:
        """The deliver options every package starts from (before scale, encoder and layout)."""
        base = self.extra or DeliverOptions(
            down="bicubic", fit=self.fit, max_seconds=self.max_seconds, threads=self.threads
        )
        if self.steps > 0:
            base = replace(base, fit=replace(base.fit, steps=self.steps, seconds=0.0))
        return base

    def for_package(self, factor: int, crf: float) -> DeliverOptions:
        """The deliver options of the package at 1/``factor`` of the master's size, LR at ``crf``."""
        base = self.base()
        encode = replace(base.encode, codec=self.codec, crf=crf, preset=self.preset)
        options = replace(base, scale=1 / factor, encode=encode, layout="hls")
        if options.fit.train in (
            "auto",
            "modulation",
        ):  # the codec-aware restorer of this factor is what the codes modulate
            options = replace(options, down="bicubic", fit=replace(options.fit, start=codec_aware_name(factor, self.codec)))
            # Chunks at scene cuts only: each starts with a keyframe, and one inside a scene (at a change
            # of difficulty) cost the car clip's LR 4-10% more bytes than its codes bought back.
            options = replace(options, rules=replace(options.rules, jump_db=0.0))
        return self.deliver_options(options, factor, crf) if self.deliver_options else options

    def for_direct(self, crf: float, folder: Path, frames: int = 0) -> EncodeOptions:
        """The encoder of the direct candidate at ``crf``: an HLS media playlist in ``folder``, every
        segment listed (VOD). ``frames`` (the title's count) given: a segment starts at each keyframe
        the caller forces, and only there (the packages' chunk starts); else every ``max_seconds``."""
        from .containers import segment_per_keyframe

        plain = EncodeOptions(codec=self.codec, crf=crf, preset=self.preset)
        if frames:
            return segment_per_keyframe(plain, frames, folder / DIRECT_SEGMENTS)
        muxer = (
            ("hls_time", f"{self.base().max_seconds:g}"),
            ("hls_playlist_type", "vod"),
            ("hls_segment_filename", str(folder / DIRECT_SEGMENTS)),
        )
        return replace(plain, muxer_options=muxer)

    def describe(self) -> dict:
        """The options as JSON values (for ``ladder.json``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("fit", "extra", "deliver_options")}
        base = _jsonable(asdict(self.base()))
        for key in ("codec", "crf", "preset"):  # the ladder's, per candidate, as are scale and layout
            base["encode"].pop(key)
        out["deliver"] = {k: v for k, v in base.items() if k not in ("scale", "layout")}
        out["deliver_options"] = getattr(self.deliver_options, "__qualname__", None)
        return _jsonable(out)


@dataclass(frozen=True)
class Candidate:
    """One encode the ladder tried. ``bytes``: what a client fetches for the picture (video packets,
    plus a package's weights and manifest), of which ``weights_bytes`` are the package's weights
    files and manifest; ``psnr``: mean Y-PSNR per frame in dB against the master; ``duration_s``:
    the media playlist's length in seconds; ``bandwidth``: the peak over its segments and
    ``average_bandwidth`` the mean, in bits per second (a chunk's weights counted with its
    segment); ``size``: the coded (width, height). ``folder`` and ``playlist``: where a rung is
    in the ladder folder ("" for a candidate not kept)."""

    name: str
    kind: str  # "direct" or "package"
    factor: int  # 1 for direct
    crf: float
    bytes: int
    weights_bytes: int
    psnr: float
    duration_s: float
    bandwidth: int
    average_bandwidth: int
    size: tuple[int, int]
    kept: bool = False
    why: str = ""
    folder: str = ""
    playlist: str = ""
    # A package's same LR restored by the generic model alone (its base ESPCN, no weights): what
    # its codec-aware start and codes bought, at the LR's bytes (``bytes - weights_bytes``).
    generic_psnr: float | None = None
    codecs: str = ""  # its video as RFC 6381 says it (the master playlist's CODECS); "" if unknown

    def point(self) -> RdPoint:
        return RdPoint(self.bytes, self.psnr, self.name)

    def to_json(self) -> dict:
        return {**asdict(self), "size": list(self.size)}


@dataclass(frozen=True)
class CandidateDone:
    """Progress: candidate ``name`` was made and measured (``done`` of ``total``)."""

    name: str
    done: int
    total: int
    candidate: Candidate


@dataclass(frozen=True)
class Ladder:
    """A ladder folder: every candidate, the rungs (kept candidates, by bandwidth: rung k is
    ``rungs[k]``), the factors skipped and why, and the seconds it took to build (0 when read)."""

    folder: str
    candidates: tuple[Candidate, ...]
    rungs: tuple[Candidate, ...]
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0

    def summary(self) -> dict:
        """What ``deliver --ladder --json`` prints."""
        return {
            "output": self.folder,
            "rungs": [{"index": k, **c.to_json()} for k, c in enumerate(self.rungs)],
            "candidates": [c.to_json() for c in self.candidates],
            "skipped": list(self.skipped),
            "seconds": round(self.seconds, 3),
        }


# ------------------------------------------------------------------------------------------- building


def build_ladder(
    master: str,
    out: str,
    options: LadderOptions = LadderOptions(),
    on_progress: Callable[[CandidateDone], None] | None = None,
    runner=None,
) -> Ladder:
    """Make every candidate of ``options`` from ``master``, keep those on the hull, and write the
    ladder folder ``out`` (made in a hidden folder beside it and renamed at the end; a ladder
    already there is replaced whole). ``runner`` fits the packages' chunks (as ``deliver``'s)."""
    from ..io.keyframes import stream_facts

    options.check()
    if not Path(master).is_file():
        raise InputNotFound(f"input not found: {master}")
    target = Path(out)
    _check_target(master, target)
    started = time.perf_counter()
    layout = stream_facts(master).layout
    plan, skipped = _plan(options, layout.width, layout.height)
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        made = []
        segments = _segment_starts(master, options, plan)
        for kind, factor, crf in plan:
            name = _name(kind, factor, crf)
            made.append(_make(master, staging, name, kind, factor, crf, options, runner, segments))
            if on_progress:
                on_progress(CandidateDone(name, len(made), len(plan), made[-1]))
        candidates, rungs = choose_rungs(made)
        _arrange(staging, candidates, rungs)
        ladder = Ladder(str(target), tuple(candidates), tuple(rungs), tuple(skipped), time.perf_counter() - started)
        _write_ladder(staging, ladder, options)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ladder


def _plan(options: LadderOptions, width: int, height: int) -> tuple[list[tuple[str, int, float]], list[str]]:
    """The candidates to make, as (kind, factor, crf), and the factors skipped with why."""
    from ..weights.shipped import shipped_sha

    plan = [("direct", 1, float(crf)) for crf in options.direct_crfs]
    skipped = []
    for f in options.factors:
        if width % (2 * f) or height % (2 * f):
            skipped.append(f"x{f}: the master is {width}x{height}; an LR by {f} needs both sides divisible by {2 * f}")
            continue
        if options.base().fit.train in ("auto", "modulation") and not shipped_sha(codec_aware_name(f, options.codec)):
            skipped.append(f"x{f}: no codec-aware restorer for x{f} ships yet ({codec_aware_name(f, options.codec)})")
            continue
        plan += [("package", f, float(crf)) for crf in options.lr_crfs]
    if not plan:
        raise InvalidOption(f"no candidate fits the master's size {width}x{height}: {'; '.join(skipped)}")
    return plan, skipped


def _name(kind: str, factor: int, crf: float) -> str:
    return f"direct_crf{crf:g}" if kind == "direct" else f"x{factor}_crf{crf:g}"


def _segment_starts(master: str, options: LadderOptions, plan) -> tuple[list[int], int]:
    """The pts where the packages' chunks start (the first package's rules; those that cut at
    scenes only are the same for every factor): the direct rungs start their segments there too,
    so that every rung's segments are the same stretches of the title and a player may switch
    rungs at any segment boundary. Empty when there is no package (direct segments by length);
    with the title's frame count."""
    from ..io.keyframes import stream_facts
    from .planes import scan_master
    from .server import chunk_spans

    packages = [(factor, crf) for kind, factor, crf in plan if kind == "package"]
    if not packages or not any(kind == "direct" for kind, _, _ in plan):
        return [], 0
    factor, crf = packages[0]
    scan = scan_master(master, factor)
    spans = chunk_spans(scan, stream_facts(master).rate, options.for_package(factor, crf))
    return [scan.pts[s.first] for s in spans], scan.frames


def _make(
    master: str, staging: Path, name: str, kind: str, factor: int, crf: float, options: LadderOptions, runner,
    segments: tuple[list[int], int],
) -> Candidate:  # fmt: skip
    """Make the candidate ``name`` in ``staging / name`` and measure it; a direct one's segments
    start at the pts ``segments[0]`` (empty: every ``max_seconds``) of the title's ``segments[1]`` frames."""
    folder = staging / name
    if kind == "direct":
        return _make_direct(master, folder, name, crf, options, segments)
    return _make_package(master, folder, name, factor, crf, options, runner)


def _make_direct(
    master: str, folder: Path, name: str, crf: float, options: LadderOptions, segments: tuple[list[int], int]
) -> Candidate:
    from ..config import PipelineOptions, Scale
    from ..pipeline.run import run_to_file
    from ..quality.video import compare_videos

    folder.mkdir()
    playlist = folder / DIRECT_PLAYLIST
    starts, frames = segments
    encode = options.for_direct(crf, folder, frames if starts else 0)
    pipeline = PipelineOptions(scale=Scale(1.0, 1.0), model="bicubic", encode=encode, threads=options.base().threads)
    run_to_file(master, str(playlist), pipeline, keyframes=starts)
    scores = compare_videos(master, str(playlist), with_ssim=False).psnr
    rates = _rates(folder, DIRECT_PLAYLIST, [])
    return Candidate(name, "direct", 1, crf, rates.bytes, 0, _mean_db(scores), *rates.fields(), codecs=rates.codecs)


def _make_package(
    master: str, folder: Path, name: str, factor: int, crf: float, options: LadderOptions, runner
) -> Candidate:
    from .server import deliver

    summary = deliver(master, str(folder), options.for_package(factor, crf), runner)
    side = summary.weights_bytes + (folder / MANIFEST).stat().st_size
    rates = _rates(folder, PACKAGE_PLAYLIST, _weights_per_segment(folder, side))
    return Candidate(
        name, "package", factor, crf, rates.bytes, side, summary.tuned_psnr, *rates.fields(),
        generic_psnr=summary.generic_psnr, codecs=rates.codecs,
    )  # fmt: skip


@dataclass(frozen=True)
class _Rates:
    """A candidate's ``bytes`` (video packets and side files), its duration in seconds, its peak
    and mean bits per second over its segments, its coded (width, height) and RFC 6381 codec string."""

    bytes: int
    duration_s: float
    peak: int
    average: int
    size: tuple[int, int]
    codecs: str

    def fields(self) -> tuple:
        return self.duration_s, self.peak, self.average, self.size


def _rates(folder: Path, playlist: str, side: list[int]) -> _Rates:
    """Bytes and bit rates of the media playlist ``folder / playlist``; ``side[k]``: bytes fetched
    with segment k besides its video (a package's weights and manifest)."""
    from ..io.codec_string import codec_string
    from ..io.keyframes import stream_facts, video_bytes

    segments = _media_segments((folder / playlist).read_text())
    per_segment = [video_bytes(str(folder / name)) for name, _ in segments]
    side = side + [0] * (len(segments) - len(side))
    duration = sum(s for _, s in segments)
    total = sum(per_segment) + sum(side)
    peak = max((v + w) * 8 / max(s, 1e-3) for (_, s), v, w in zip(segments, per_segment, side))
    layout = stream_facts(str(folder / playlist)).layout
    average = total * 8 / max(duration, 1e-3)
    codecs = codec_string(str(folder / playlist)) or ""
    return _Rates(total, duration, math.ceil(peak), math.ceil(average), (layout.width, layout.height), codecs)


def _media_segments(text: str) -> list[tuple[str, float]]:
    """(segment name, seconds) of each segment of an HLS media playlist, in order."""
    out, seconds = [], 0.0
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("#EXTINF:"):
            seconds = float(line[len("#EXTINF:") :].split(",")[0])
        elif line and not line.startswith("#"):
            out.append((line, seconds))
    if not out:
        raise OutputError("the candidate's playlist lists no segment")
    return out


def _weights_per_segment(folder: Path, side: int) -> list[int]:
    """Bytes of a package's weights fetched with each segment: a chunk's weights file with the
    chunk's segment (a file several chunks name, with the first); the rest of ``side`` (the
    manifest, a title's file) with the first segment."""
    manifest = expanded(load_manifest((folder / MANIFEST).read_bytes(), MAX_MANIFEST_BYTES))
    names = playlist_segments((folder / PACKAGE_PLAYLIST).read_text())
    per = [0] * len(names)
    seen: set[str] = set()
    for k, c in enumerate(manifest["chunks"]):  # one segment per chunk, in order
        if c.get("file") and c["file"] not in seen and k < len(per):
            seen.add(c["file"])
            per[k] += int(c["size"])
    per[0] += side - sum(per)
    return per


def _mean_db(scores) -> float:
    finite = [s for s in scores if math.isfinite(s)]
    return float(sum(finite) / len(finite)) if finite else 0.0


# ------------------------------------------------------------------------------------------- choosing


def choose_rungs(made: list[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
    """Every candidate with ``kept`` and ``why`` set, and the rungs: the kept ones by bandwidth,
    each with its rung folder and playlist."""
    on_hull = {p.label for p in convex_hull([c.point() for c in made])}
    direct = [c.point() for c in made if c.kind == "direct"]
    judged = []
    for c in made:
        if c.name not in on_hull:
            judged.append(replace(c, why="under the convex hull of the candidates' (bytes, dB)"))
            continue
        floor = direct_psnr_at(direct, c.bytes) if c.kind == "package" else None
        if floor is not None and c.psnr < floor:
            judged.append(replace(c, why=f"below direct coding at its bytes ({c.psnr:.2f} < {floor:.2f} dB)"))
            continue
        judged.append(replace(c, kept=True, why="on the hull"))
    kept = sorted((c for c in judged if c.kept), key=lambda c: (c.bandwidth, c.bytes))
    rungs = [
        replace(c, folder=f"rung_{k}_{c.name}", playlist=DIRECT_PLAYLIST if c.kind == "direct" else PACKAGE_PLAYLIST)
        for k, c in enumerate(kept)
    ]
    placed = {r.name: r for r in rungs}
    return [placed.get(c.name, c) for c in judged], rungs


def direct_psnr_at(direct: list[RdPoint], nbytes: int) -> float | None:
    """The direct encodes' PSNR (dB) at ``nbytes``: linear in log(bytes) between the two efficient
    direct points around it; beyond their range, the nearest point's PSNR when it has fewer bytes
    (it has the most PSNR then); None when there is nothing to compare with."""
    curve: list[RdPoint] = []
    for p in sorted((p for p in direct if p.bytes > 0 and math.isfinite(p.psnr)), key=lambda p: (p.bytes, -p.psnr)):
        if not curve or p.psnr > curve[-1].psnr:
            curve.append(p)
    if not curve or nbytes < curve[0].bytes:
        return None
    if nbytes >= curve[-1].bytes:
        return curve[-1].psnr
    lo, hi = next((a, b) for a, b in zip(curve, curve[1:]) if a.bytes <= nbytes < b.bytes)
    t = math.log(nbytes / lo.bytes) / math.log(hi.bytes / lo.bytes)
    return lo.psnr + t * (hi.psnr - lo.psnr)


# -------------------------------------------------------------------------------------------- writing


def _arrange(staging: Path, candidates: list[Candidate], rungs: list[Candidate]) -> None:
    """Delete the candidates not kept; rename the kept ones to their rung folders."""
    for c in candidates:
        if not c.kept:
            shutil.rmtree(staging / c.name)
    for r in rungs:
        os.replace(staging / r.name, staging / r.folder)


def master_playlist(rungs: list[Candidate] | tuple[Candidate, ...]) -> str:
    """The HLS master playlist: one variant per rung, in the order given."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    for r in rungs:
        codecs = f',CODECS="{r.codecs}"' if r.codecs else ""  # a player skips a variant it cannot decode
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={r.bandwidth},AVERAGE-BANDWIDTH={r.average_bandwidth},"
            f"RESOLUTION={r.size[0]}x{r.size[1]}{codecs}"
        )
        lines.append(f"{r.folder}/{r.playlist}")
    return "\n".join(lines) + "\n"


def _write_ladder(staging: Path, ladder: Ladder, options: LadderOptions) -> None:
    (staging / MASTER_PLAYLIST).write_text(master_playlist(ladder.rungs))
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "master_playlist": MASTER_PLAYLIST,
        "measured_on": "bytes: video packets over all segments (no audio, no container) plus a package's "
        "weights files and manifest.json; psnr: Y-PSNR per frame (8-bit, whole frame) against the master, mean",
        **{k: v for k, v in ladder.summary().items() if k != "output"},
        "options": options.describe(),
    }
    (staging / LADDER).write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")


def _check_target(master: str | None, target: Path) -> None:
    """Refuse a target that is the master, cannot be written, or is something other than a ladder
    (or an empty folder)."""
    if not target.parent.is_dir():
        raise OutputError(f"output folder {target.parent} does not exist")
    if master is not None and target.exists() and target.resolve() == Path(master).resolve():
        raise OutputError(f"output {target} is the input: choose another name")
    if target.exists() and (not target.is_dir() or (not (target / LADDER).is_file() and any(target.iterdir()))):
        raise OutputError(f"{target} exists and is not a ladder: not replacing it")


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename the finished ladder over ``target`` (an older ladder there is replaced whole)."""
    from .server import replace_folder

    _check_target(None, target)  # again: something may have appeared there meanwhile
    replace_folder(staging, target)


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


# ------------------------------------------------------------------------------------------- reading


def is_ladder(path: str) -> bool:
    """Whether ``path`` is a local ladder folder (it holds ``ladder.json``)."""
    return not path.startswith(("http://", "https://")) and (Path(path) / LADDER).is_file()


def read_ladder(folder: str) -> Ladder:
    """The ladder in ``folder``, checked: ``ladder.json`` of bounded size, this format, typed
    fields, every rung a plain folder name in ``folder`` holding its media playlist; a direct
    rung's playlist lists plain segment names beside it. Anything else is a PackageError."""
    path = Path(folder) / LADDER
    if not path.is_file():
        raise PackageError(f"{folder}: not a ladder (no {LADDER})")
    if path.stat().st_size > MAX_LADDER_BYTES:
        raise PackageError(f"{path}: {path.stat().st_size} bytes, more than a ladder may hold")
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT or not isinstance(doc.get("version"), int) or doc["version"] > VERSION:
            raise PackageError(f"{path}: not a ladder of this format ({FORMAT} version {VERSION} or older)")
        candidates = tuple(_candidate(c, path) for c in _bounded_list(doc["candidates"], path))
        rungs = tuple(_rung(r, k, Path(folder), path) for k, r in enumerate(_bounded_list(doc["rungs"], path)))
        skipped = tuple(str(s) for s in _bounded_list(doc.get("skipped", []), path))
    except (KeyError, TypeError, ValueError, AttributeError, UnicodeDecodeError) as e:
        if isinstance(e, PackageError):
            raise
        raise PackageError(f"{path}: malformed ({type(e).__name__}: {e})") from None
    if not rungs:
        raise PackageError(f"{path}: lists no rung")
    return Ladder(str(folder), candidates, rungs, skipped)


def _bounded_list(value, where: Path) -> list:
    if not isinstance(value, list) or len(value) > MAX_CANDIDATES:
        raise PackageError(f"{where}: a list of at most {MAX_CANDIDATES} entries was expected")
    return value


_TYPES = {
    "name": str, "kind": str, "factor": int, "crf": (int, float), "bytes": int, "weights_bytes": int,
    "psnr": (int, float), "duration_s": (int, float), "bandwidth": int, "average_bandwidth": int,
    "size": list, "kept": bool, "why": str, "folder": str, "playlist": str,
}  # fmt: skip


def _candidate(entry: dict, where: Path) -> Candidate:
    for key, kind in _TYPES.items():
        value = entry[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise PackageError(f"{where}: candidate field '{key}' is {type(value).__name__}, not {kind}")
    if entry["kind"] not in KINDS:
        raise PackageError(f"{where}: candidate kind '{entry['kind']}': choose {' or '.join(KINDS)}")
    size = entry["size"]
    if len(size) != 2 or not all(isinstance(v, int) and 0 < v <= 1 << 16 for v in size):
        raise PackageError(f"{where}: candidate size {size!r} is not [width, height]")
    generic = entry.get("generic_psnr")  # a package's; ladders before it was measured lack it
    if not (generic is None or (isinstance(generic, (int, float)) and not isinstance(generic, bool))):
        raise PackageError(f"{where}: candidate field 'generic_psnr' is {type(generic).__name__}, not a number")
    codecs = entry.get("codecs", "")
    if not (isinstance(codecs, str) and re.fullmatch(r"[A-Za-z0-9.]{0,64}", codecs)):  # it goes into a playlist
        raise PackageError(f"{where}: candidate field 'codecs' {codecs!r} is not a codec string")
    return Candidate(
        **{k: entry[k] for k in _TYPES if k != "size"}, size=(size[0], size[1]), generic_psnr=generic, codecs=codecs
    )


def _rung(entry: dict, k: int, folder: Path, where: Path) -> Candidate:
    """Rung ``k`` of ``ladder.json``, its folder and media playlist checked to be plain names
    inside ``folder``."""
    rung = _candidate(entry, where)
    if entry.get("index", k) != k or not rung.kept:
        raise PackageError(f"{where}: rung {k} is not listed in order or not kept")
    plain_name(rung.folder, where)
    plain_name(rung.playlist, where)
    home = folder / rung.folder
    if home.is_symlink() or not home.is_dir() or not (home / rung.playlist).is_file():
        raise PackageError(f"{where}: rung {k}: {rung.folder}/{rung.playlist} is missing")
    if rung.kind == "direct":
        _check_direct_playlist(home / rung.playlist)
    return rung


def _check_direct_playlist(path: Path) -> None:
    """A direct rung's media playlist: bounded, no tag naming another file, each segment a plain
    file name beside it."""
    if path.stat().st_size > MAX_PLAYLIST_BYTES:
        raise PackageError(f"{path}: {path.stat().st_size} bytes, more than a playlist may hold")
    try:
        names = playlist_segments(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise PackageError(f"{path}: {e}") from None
    for name in names:
        if not (path.parent / plain_name(name, path)).is_file():
            raise PackageError(f"{path}: segment {name} is missing")


# ------------------------------------------------------------------------------------------ restoring


def numbers(text: str, what: str, kind: type = float) -> tuple:
    """The comma-separated numbers of ``text`` ("23,28,33"), each a ``kind``; empty gives ()."""
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InvalidOption(f"{what} '{text}' is not a list of numbers like 23,28,33") from None


def parse_bandwidth(text: str) -> int:
    """Bits per second from "300k", "1.5M", "2G" or a plain number (k = 1000)."""
    t = text.strip()
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}.get(t[-1:].lower(), 1.0)
    try:
        value = float(t[:-1] if scale != 1.0 else t) * scale
    except ValueError:
        raise InvalidOption(f"--bandwidth '{text}' is not a rate like 300k or 1.5M (bits per second)") from None
    if not value > 0 or not math.isfinite(value):
        raise InvalidOption(f"--bandwidth {text}: must be positive")
    return int(value)


def choose_rung(ladder: Ladder, index: int | None = None, bandwidth: int | None = None) -> tuple[Candidate, str | None]:
    """The rung to play and a note (or None): rung ``index``; or the best (most PSNR) whose
    BANDWIDTH is at most ``bandwidth`` bits/s, the lowest when none is; or, given neither, the best."""
    if index is not None and bandwidth is not None:
        raise InvalidOption("give --rung or --bandwidth, not both")
    rungs = ladder.rungs
    if index is not None:
        if not 0 <= index < len(rungs):
            raise InvalidOption(f"--rung {index} is out of range: 0 to {len(rungs) - 1}")
        return rungs[index], None
    if bandwidth is None:
        best = max(rungs, key=lambda r: r.psnr)
        return best, f"no --rung or --bandwidth: playing the best rung, {rungs.index(best)} ({best.name})"
    fits = [r for r in rungs if r.bandwidth <= bandwidth]
    if fits:
        best = max(fits, key=lambda r: r.psnr)
        return best, None
    low = min(rungs, key=lambda r: r.bandwidth)
    return low, (
        f"no rung fits {bandwidth} bits/s: playing the lowest, {rungs.index(low)} ({low.name}, {low.bandwidth} bits/s)"
    )


def restore_rung(
    ladder: Ladder,
    rung: Candidate | int,
    dst: str,
    options: RestoreOptions = RestoreOptions(),
    on_progress: Callable | None = None,
    stop: threading.Event | None = None,
):
    """Play ``rung`` (a rung of ``ladder``, or its index) into the video ``dst``, coded with
    ``options.encode``: a package rung restored with its weights to the master's size
    (``client.restore``); a direct rung through the pipeline at scale 1 (bicubic at 1 leaves each
    frame as decoded). Returns the pipeline's ``RunSummary``."""
    from ..config import PipelineOptions, Scale
    from ..pipeline.run import run_to_file
    from .client import restore

    if isinstance(rung, int):
        rung, _ = choose_rung(ladder, index=rung)
    home = Path(ladder.folder) / rung.folder
    if rung.kind == "package":
        return restore(str(home), dst, options, on_progress=on_progress, stop=stop)
    pipeline = PipelineOptions(
        scale=Scale(1.0, 1.0), model="bicubic", encode=options.encode, device=options.device, threads=options.threads
    )
    return run_to_file(str(home / rung.playlist), dst, pipeline, on_progress=on_progress, stop=stop)


def restore_ladder(
    folder: str,
    dst: str,
    options: RestoreOptions = RestoreOptions(),
    rung: int | None = None,
    bandwidth: str | int | None = None,
    on_progress: Callable | None = None,
    stop: threading.Event | None = None,
):
    """``restore`` of a ladder folder: the rung ``choose_rung`` picks (``bandwidth``: bits/s, or a
    text like "300k"), restored by ``restore_rung``; the choice's note leads the summary's notes."""
    if not is_ladder(folder):
        raise InvalidOption(
            f"--rung and --bandwidth choose a rung of a ladder (deliver --ladder): {folder} has no {LADDER}"
        )
    ladder = read_ladder(folder)
    rate = parse_bandwidth(bandwidth) if isinstance(bandwidth, str) else bandwidth
    chosen, note = choose_rung(ladder, rung, rate)
    summary = restore_rung(ladder, chosen, dst, options, on_progress, stop)
    return replace(summary, notes=((note,) if note else ()) + tuple(summary.notes))
