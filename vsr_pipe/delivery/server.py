"""The server side: a master in, a delivery package out.

1. Scan the master frame by frame: timestamps, scene scores and difficulties, the chunks
   (``chunks.py``, ``planes.py``); no plane is kept.
2. Make the LR with the pipeline (irn's learned downscale, or bicubic) and encode it with a keyframe
   at every chunk start, so each chunk decodes on its own.
3. Decode the LR as a client would, and fit a correction network per chunk (``fit.py``), or one
   over all of them (``joint.py``), on the runner the caller gives (this process, local processes,
   Ray: anything with ``map``). A chunk's (LR, master) planes are decoded only when the runner is
   about to take its task, so a few chunks are held, never the title (``--joint`` holds the title:
   its one fit is over every frame). Each fit is saved as it ends, and a rerun after an interruption
   reuses those whose inputs hash the same (``resume.py``).
4. Write the package into a temporary folder beside the target and rename it at the end: the
   folder, the HLS folder (``lr.m3u8``, a segment per chunk), or the one Matroska file with the
   manifest and weights attached (``containers.py``).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..config import EncodeOptions, PipelineOptions, Scale
from ..errors import InputNotFound, InvalidOption, OutputError, VsrPipeError
from ..runners import InProcessRunner, TaskResources, cluster_slots, task_resources
from . import lean_manifest
from .chunks import ChunkRules, ChunkSpan, split_chunks
from .containers import LR_FILES, holds_package, lr_encode, lr_video, write_embedded
from .fit import BaseModel, ChunkResult, ChunkTask, FitSettings, fit_chunk
from .joint import joint_task, split_result
from .modulated import TitleFit, chunk_settings, effective_psnr, fit_title, start_shape, write_codes
from .package import FORMAT, LAYOUTS, MANIFEST, VERSION, file_entry
from .planes import ChunkPlanes, MasterScan, ReportEvery, chunk_planes, frame_pts, scan_master
from .report import write_chart
from .resume import ChunkCache, cache_folder, task_key

REPORT, CHART = "report.json", "psnr.png"
STAGES = ("scan", "lr", "decode", "title", "fit")  # what ``on_stage`` names, in the order they run
EMBEDDED = ".embedded.mkv"  # --embed: the finished file in the staging folder, renamed onto the target
JOINT_NAME = "joint.safetensors"  # --joint: the one correction every chunk entry names


class DeliveryFailed(VsrPipeError, RuntimeError):
    """A chunk could not be fitted, so no package was written."""


@dataclass(frozen=True)
class DeliverOptions:
    """``scale``: the LR's size over the master's (0.5, 1/3, 0.25); ``down``: "irn" (the learned
    downscale; restored by its inverse plus a correction) or "bicubic" (restored by ESPCN plus a
    correction); ``max_seconds``: the longest chunk; ``rules``: scene-cut rules (their max_frames
    is derived from ``max_seconds``); ``layout``: the package as a folder, an HLS folder, or one
    Matroska file (``-o NAME.mkv``); ``joint``: one correction over every frame, so, unlike
    per-chunk fitting, it holds the whole title's Y planes in memory (about 2.6 MB a 1080p frame
    pair at x2, twice over while they are stacked): for comparisons on short titles."""

    scale: float = 0.5
    down: str = "irn"
    encode: EncodeOptions = field(default_factory=lambda: EncodeOptions(crf=23))
    refine: int = 0  # irn down: Adam steps per frame tuning the LR to its inverse (HCD)
    max_seconds: float = 5.0
    rules: ChunkRules = field(default_factory=ChunkRules)
    fit: FitSettings = field(default_factory=FitSettings)
    engine: str = "auto"
    threads: int = 0
    joint: bool = False  # one correction over all the chunks (STDO's joint training), for comparison
    layout: str = "folder"  # "folder" (lr.mp4), "hls" (lr.m3u8, a segment per chunk), "embed" (one .mkv)
    # fit.train "modulation": weights ship only where they beat the same bytes spent on the LR, whose
    # curve gives this many dB per doubling of its bytes (delivery/title.py)
    db_per_doubling: float = 3.0

    @property
    def mode(self) -> str:
        """How the corrections were fitted: "joint" (one for all chunks) or "per-chunk"."""
        return "joint" if self.joint else "per-chunk"

    @property
    def factor(self) -> int:
        return int(round(1 / self.scale))

    def check(self) -> None:
        if self.down not in ("irn", "bicubic"):
            raise InvalidOption(f"--down {self.down}: choose irn or bicubic")
        if self.factor not in (2, 3, 4) or abs(self.factor * self.scale - 1) > 1e-6:
            raise InvalidOption(f"scale {self.scale:g}: deliver takes 0.5, 1/3 or 0.25 (restored by 2, 3 or 4)")
        if self.layout not in LAYOUTS:
            raise InvalidOption(f"package layout '{self.layout}': choose folder, hls or embed")
        if self.refine and self.down != "irn":
            raise InvalidOption("--refine tunes irn's LR; it does not apply to --down bicubic")
        if self.fit.steps < 1 and self.fit.seconds <= 0:
            raise InvalidOption("the budget must be at least one step or a positive number of seconds")
        if self.fit.train not in ("correction", "modulation"):
            raise InvalidOption(f"weights '{self.fit.train}': choose correction or modulation")
        if self.fit.train == "modulation":
            self._check_modulation()

    def resolved(self) -> DeliverOptions:
        """These options with the fit's kind decided ("auto": compact modulation codes where they can
        be, a bicubic LR of a factor whose codec-aware restorer ships, else a whole correction) and a
        modulation fit's start named: the codec-aware restorer of the factor."""
        from ..weights.shipped import codec_aware_name, shipped_sha

        codec_aware = codec_aware_name(self.factor, self.encode.codec)
        fit = self.fit
        if fit.train == "auto":
            compact = self.down == "bicubic" and not self.joint and bool(shipped_sha(codec_aware))
            fit = replace(fit, train="modulation" if compact else "correction")
        if fit.train == "modulation" and not fit.start:
            fit = replace(fit, start=codec_aware)
        return replace(self, fit=fit)

    def _check_modulation(self) -> None:
        from ..weights.shipped import shipped_sha

        if self.down != "bicubic" or self.joint:
            raise InvalidOption("modulation weights modulate the codec-aware ESPCN: --down bicubic, not --joint")
        if not shipped_sha(self.fit.start):
            raise InvalidOption(f"modulation starts from shipped weights; this vsr-pipe has no '{self.fit.start}'")


@dataclass(frozen=True)
class ChunkDone:
    """Progress: chunk ``result.index`` finished (``done`` of ``total``)."""

    done: int
    total: int
    span: ChunkSpan
    result: ChunkResult
    joint: bool = False  # the result is the joint fit's (its steps and seconds are all the chunks')
    reused: bool = False  # fitted by an earlier, interrupted run with the same inputs (``resume.py``)


@dataclass(frozen=True)
class DeliverySummary:
    output: str
    frames: int
    chunks: int
    mode: str  # "per-chunk" or "joint"
    layout: str  # "folder", "hls" or "embed"
    reused: int  # chunks an earlier, interrupted run had fitted with the same inputs
    generic_psnr: float
    tuned_psnr: float
    lr_bytes: int
    weights_bytes: int
    seconds: dict  # per stage: scan, lr, decode, fit
    server_s_per_minute: dict  # the same per minute of video

    @property
    def gain_db(self) -> float:
        return self.tuned_psnr - self.generic_psnr


def deliver(
    master: str,
    out: str,
    options: DeliverOptions = DeliverOptions(),
    runner=None,
    on_chunk: Callable[[ChunkDone], None] | None = None,
    on_stage: Callable[[str, int, int], None] | None = None,
) -> DeliverySummary:
    """Package ``master`` into ``out``, a folder (a ``.mkv`` file for ``layout="embed"``; see the
    module's docstring). ``runner``: an object with ``map(fn, tasks)`` yielding outcomes with
    ``index``, ``value``, ``error`` (``vsr_pipe.runners``); None runs the chunks here, one
    after another. ``on_chunk``: called as each chunk ends. ``on_stage(stage, done, total)``: called
    as each of :data:`STAGES` starts (``done`` 0), every few seconds while it runs, and as it ends
    (``done == total``); "scan", "lr" and "decode" count frames ("scan"'s ``total`` is the
    container's count, 0 when it does not say), "title" (compact weights only: the title's codes,
    fitted before any chunk's) counts steps, "fit" counts chunks (called again as each ends)."""
    from ..io.keyframes import stream_facts, video_bytes

    options = options.resolved()
    options.check()
    if not Path(master).is_file():
        raise InputNotFound(f"input not found: {master}")
    target = Path(out)
    _check_target(master, target, options.layout)
    stage = _once_each(on_stage)
    clock: dict[str, float] = {}
    t = time.perf_counter()
    facts = stream_facts(master)
    stage("scan", 0, facts.frame_count)
    scan = scan_master(master, options.factor, lambda done: stage("scan", done, facts.frame_count))
    frames = scan.frames
    if frames == 0:
        raise DeliveryFailed(f"{master} has no video frames to deliver")
    stage("scan", frames, frames)
    spans = chunk_spans(scan, facts.rate, options)
    rate = float(facts.rate) if facts.rate else 25.0
    clock["scan"] = time.perf_counter() - t
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        t = time.perf_counter()
        stage("lr", 0, frames)
        keyframes = [scan.pts[s.first] for s in spans]
        lr_path = staging / LR_FILES[options.layout]
        lr_options = _lr_options(options, staging, frames)
        make_lr(master, lr_path, lr_options, keyframes, lambda done: stage("lr", done, frames))
        stage("lr", frames, frames)
        clock["lr"] = time.perf_counter() - t
        t = time.perf_counter()
        stage("decode", 0, frames)
        lr_pts, lr_shape = frame_pts(str(lr_path), lambda done: stage("decode", done, frames))
        if len(lr_pts) != frames:
            raise DeliveryFailed(f"the LR has {len(lr_pts)} frames, the master {frames}")
        stage("decode", frames, frames)
        video, lr_bytes, segments = lr_video(staging, options.layout)
        if options.layout == "hls" and len(segments) != len(spans):
            raise DeliveryFailed(
                f"the LR's playlist has {len(segments)} segments for {len(spans)} chunks: the encoder "
                f"({options.encode.codec}) made keyframes inside chunks; --hls needs one that makes none unasked"
            )
        clock["decode"] = time.perf_counter() - t
        spans = [replace(s, first_pts=int(lr_pts[s.first]), last_pts=int(lr_pts[s.last])) for s in spans]
        base = _base_model(options, scan.shape, lr_shape)
        t = time.perf_counter()
        cache = ChunkCache(cache_folder(target))
        title = None
        if options.fit.train == "modulation":  # the title's codes first: every chunk's fit starts from them
            stage("title", 0, options.fit.steps)
            title = fit_title(
                lr_path, master, spans, frames, base, options.fit, cache, video_bytes(str(lr_path)), options.db_per_doubling
            )  # fmt: skip
            stage("title", options.fit.steps, options.fit.steps)
        stage("fit", 0, len(spans))
        decoding = {"s": 0.0}  # the chunks' planes are decoded during the fit stage: counted as decode
        planes = _timed(chunk_planes(str(lr_path), master, spans), decoding)
        results, reused = _fit_all(spans, planes, base, options, runner, on_chunk, cache, stage, title)
        clock["fit"] = time.perf_counter() - t - decoding["s"]
        clock["decode"] += decoding["s"]
        costs = _costs(clock, frames / rate)
        lr = _Lr(video, lr_bytes, segments, lr_shape, _lr_offset(lr_path, lr_pts[0], scan.pts[0], facts.time_base))
        summary_fields = _write_package(staging, facts, spans, results, base, options, lr, costs, title, lr_path)
        _move_into_place(staging, target, options.layout)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # the finished chunks stay in the cache for a rerun
        raise
    cache.remove()
    minutes = frames / rate / 60
    return DeliverySummary(
        output=str(target),
        frames=frames,
        chunks=len(spans),
        mode=options.mode,
        layout=options.layout,
        reused=reused,
        seconds=clock,
        server_s_per_minute={k: v / minutes for k, v in clock.items()},
        **summary_fields,
    )


def chunk_spans(scan: MasterScan, rate, options: DeliverOptions) -> list[ChunkSpan]:
    """The chunks of a master scanned as ``scan`` at frame ``rate`` (None: 25 fps assumed), by
    ``options``' rules and longest chunk."""
    fps = float(rate) if rate else 25.0
    rules = replace(options.rules, max_frames=max(1, int(round(options.max_seconds * fps))))
    return split_chunks(list(range(scan.frames)), scan.scores, rules, scan.difficulties)


def make_lr(
    master: str,
    dst: Path,
    options: DeliverOptions,
    keyframes: list[int],
    on_frames: Callable[[int], None] | None = None,
) -> None:
    """The LR video: the pipeline's downscale, encoded with a keyframe at each pts in ``keyframes``;
    audio and subtitles copied; irn's LR carries its rescaling tag. ``on_frames(done)``: frames
    written so far, every few seconds."""
    from ..pipeline.run import run_to_file

    if options.down == "irn":
        pipeline = PipelineOptions(scale=Scale(options.scale, options.scale), model="irn", refine=options.refine)
    else:
        size = _lr_size(master, options.factor)
        pipeline = PipelineOptions(size=size, model="bicubic")
    pipeline = replace(pipeline, engine=options.engine, threads=options.threads, encode=options.encode)
    every = ReportEvery(on_frames)
    run_to_file(master, dst, pipeline, on_progress=lambda progress: every(progress.frames), keyframes=keyframes)


def _lr_size(master: str, factor: int) -> tuple[int, int]:
    from ..io.keyframes import stream_facts

    layout = stream_facts(master).layout
    return layout.width // factor, layout.height // factor


def _lr_options(options: DeliverOptions, staging: Path, frames: int) -> DeliverOptions:
    """``options`` with the LR's encoder and muxer options for its layout (``containers.lr_encode``)."""
    from ..io.encode import resolve_codec

    encode = replace(options.encode, codec=resolve_codec(options.encode.codec))
    return replace(options, encode=lr_encode(encode, options.layout, staging, frames))


def _base_model(options: DeliverOptions, hr_shape, lr_shape) -> BaseModel:
    r = options.factor
    if (lr_shape[0] * r, lr_shape[1] * r) != tuple(hr_shape):
        raise InvalidOption(
            f"the master is {hr_shape[1]}x{hr_shape[0]}: deliver needs a size the factor {r} divides "
            f"(the LR is {lr_shape[1]}x{lr_shape[0]})"
        )
    if options.down == "irn":
        return BaseModel("irn_up", "irn_y", r, tuple(hr_shape), tuple(lr_shape))
    return BaseModel("espcn", f"espcn_y_x{r}", r, tuple(hr_shape), tuple(lr_shape))


def _fit_all(
    spans,
    planes: Iterator[ChunkPlanes],
    base,
    options: DeliverOptions,
    runner,
    on_chunk,
    cache: ChunkCache,
    stage,
    title: TitleFit | None = None,
) -> tuple[list[ChunkResult], int]:
    """Every chunk's result, in chunk order, and how many were reused: one task per chunk, each made
    from ``planes`` only when the runner is ready for it (:func:`_fit_lazily`), or one joint task
    split back. A task whose result ``cache`` holds is not fitted again; each fitted one is saved
    there as soon as it ends."""
    settings = options.fit if title is None else chunk_settings(options.fit)
    start_codes = None if title is None else title.codes
    results: dict[int, ChunkResult] = {}
    reused_chunks: set[int] = set()
    keys: dict[int, str] = {}  # the cache keys of the tasks handed out, until their results are saved

    def finished(result: ChunkResult, reused: bool) -> None:
        parts = split_result(result, spans) if options.joint else [result]
        for part in parts:
            results[part.index] = part
            if reused:
                reused_chunks.add(part.index)
            if on_chunk:
                on_chunk(ChunkDone(len(results), len(spans), spans[part.index], part, options.joint, reused))
            stage("fit", len(results), len(spans))

    def tasks() -> Iterator[ChunkTask]:
        """The tasks to fit, made one at a time; one the cache holds is finished here instead."""
        made = (
            iter([_joint_task(spans, planes, base, settings)])
            if options.joint
            else _chunk_tasks(planes, base, settings, start_codes)
        )
        for task in made:
            key = task_key(task)
            saved = cache.load(key)
            if saved is None:
                keys[task.index] = key
                yield task
            else:
                finished(saved, reused=True)
            task = None  # not held while the next chunk is decoded

    for index, outcome in _fit_lazily(runner, tasks(), _fit_resources(runner, settings)):
        if outcome.error is not None:
            what = "the joint fit" if options.joint else f"chunk {index}"
            raise DeliveryFailed(f"{what} could not be fitted: {outcome.error}")
        cache.save(keys.pop(index), outcome.value)  # before anything else: an interruption from here on keeps it
        finished(outcome.value, reused=False)
        _release_free_heap()
    return [results[k] for k in range(len(spans))], len(reused_chunks)


def _chunk_tasks(
    planes: Iterator[ChunkPlanes], base: BaseModel, settings: FitSettings, start_codes: dict | None = None
) -> Iterator[ChunkTask]:
    for chunk in planes:
        task = ChunkTask(chunk.span.index, chunk.lr, chunk.hr, base, settings, start_codes)
        chunk = None  # noqa: F841 (the task alone holds the planes)
        yield task
        task = None  # noqa: F841


def _joint_task(spans, planes: Iterator[ChunkPlanes], base: BaseModel, settings: FitSettings) -> ChunkTask:
    """--joint's one task, over every chunk's frames: it holds the whole title's planes (twice while
    they are stacked), as one fit over all frames must."""
    chunks = list(planes)
    lr_frames = [y for c in chunks for y in c.lr]
    hr_frames = [y for c in chunks for y in c.hr]
    return joint_task(spans, lr_frames, hr_frames, base, settings)


def _fit_lazily(runner, tasks: Iterator[ChunkTask], resources) -> Iterator[tuple[int, object]]:
    """(task index, outcome) for each task of ``tasks`` as it ends, fitted by ``runner``, drawing
    ``tasks`` only as it goes: this process's runners take one task at a time from the iterator;
    the others take whole lists, so they are given windows of as many tasks as they run at once
    (the next window is made when the last one has ended). Either way a few tasks' planes are held,
    not the title's."""
    if runner is None or isinstance(runner, InProcessRunner):
        handed: list[int] = []

        def handing() -> Iterator[ChunkTask]:
            for task in tasks:
                handed.append(task.index)
                yield task
                task = None  # noqa: F841 (not held while the next one is made)

        for outcome in (runner or InProcessRunner()).map(fit_chunk, handing(), resources):
            yield handed[outcome.index], outcome
        return
    window = _window(runner, resources)
    while True:
        batch = list(itertools.islice(tasks, window))
        if not batch:
            return
        indices = [task.index for task in batch]
        outcomes = runner.map(fit_chunk, batch, resources)
        batch = None  # the runner holds the tasks while they run, and lets them go as they end
        for outcome in outcomes:
            yield indices[outcome.index], outcome


def _window(runner, resources) -> int:
    """How many tasks ``runner`` runs at once: its ``workers``, or, for Ray with no cap, what the
    cluster fits now."""
    workers = getattr(runner, "workers", 0)
    if workers:
        return int(workers)
    connect = getattr(runner, "connect", None)
    if connect is not None:
        return min(cluster_slots(connect(), resources), 64)  # each task's planes are held here until it ends
    return 1


def _once_each(on_stage: Callable[[str, int, int], None] | None) -> Callable[[str, int, int], None]:
    """``on_stage`` less any call that repeats the one before it (a pass's last periodic report is
    often its end too)."""
    last: list = [None]

    def stage(name: str, done: int, total: int) -> None:
        if on_stage is not None and (name, done, total) != last[0]:
            last[0] = (name, done, total)
            on_stage(name, done, total)

    return stage


def _release_free_heap() -> None:
    """Hand the heap pages malloc holds free back to the system (glibc's ``malloc_trim``; elsewhere
    nothing). With decoder and torch threads allocating, glibc's arenas otherwise keep each fit's
    freed planes and activations: the memory in use stays flat over a title, but RSS grew by about
    30 MB a 1080p chunk (bench/deliver_memory.py: 4.7 GB after 122 chunks, 183 MB of it in use)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; musl has none
    except (OSError, AttributeError):
        return None


def _timed(items: Iterator, spent: dict) -> Iterator:
    """``items`` unchanged, adding the seconds spent making them to ``spent["s"]``."""
    while True:
        t = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            spent["s"] += time.perf_counter() - t
        yield item
        item = None  # noqa: F841 (not held while the next one is made)


def _fit_resources(runner, settings):
    """What each fitting task asks its runner for: on Ray, a GPU where the fit runs on one."""
    if runner is None:
        return TaskResources()
    return task_resources(PipelineOptions(device=settings.device), runner)[0]


@dataclass(frozen=True)
class _Lr:
    """The LR as written: the manifest's "video" entry, its bytes, its HLS segments, its Y shape."""

    video: dict
    bytes: int
    segments: list
    shape: tuple
    offset: str = "0"  # seconds the LR's timestamps run ahead of the master's (a fraction)


def _lr_offset(lr_path: Path, lr_first, master_first, master_base) -> str:
    """How much later the LR's first frame is than the master's, in seconds: MPEG-TS (HLS) moves
    every stream on when one would start before 0 (B-frames, AAC priming). The client moves its
    output back by it, onto the master's timeline."""
    from ..io.keyframes import stream_facts

    if lr_first is None or master_first is None:
        return "0"
    return str(lr_first * stream_facts(str(lr_path)).time_base - master_first * master_base)


def _write_package(
    staging: Path, facts, spans, results, base: BaseModel, options: DeliverOptions, lr: _Lr, costs: dict,
    title: TitleFit | None = None, lr_path: Path | None = None,
) -> dict:  # fmt: skip
    """The weights, report, chart and manifest into ``staging`` (and, embedded, the one .mkv)."""
    from safetensors.numpy import save

    from ..weights.shipped import shipped_sha

    if title is not None:
        return _write_modulation_package(staging, facts, spans, results, base, options, lr, costs, title, lr_path)
    chunk_entries = []
    for span, result in zip(spans, results):
        name = JOINT_NAME if options.joint else f"chunk_{span.index:04d}.safetensors"
        if not (staging / name).exists():  # joint: the one file every chunk names
            # One metadata key: safetensors writes several in a random order, and the bytes must not vary.
            (staging / name).write_bytes(save(result.tensors, metadata={"format": FORMAT}))
        entry = file_entry(staging / name)
        entry.update(index=span.index, first_pts=span.first_pts, last_pts=span.last_pts, frames=span.frames)
        if lr.segments:
            entry["segment"] = lr.segments[span.index]
        chunk_entries.append(entry)
    generic = [p for r in results for p in r.generic_psnr]
    tuned = [p for r in results for p in r.tuned_psnr]
    weights_bytes = sum({e["file"]: e["size"] for e in chunk_entries}.values())
    lr_bytes = lr.bytes
    quality = {
        "generic_psnr": _mean(generic),
        "tuned_psnr": _mean(tuned),
        "gain_db": _mean(tuned) - _mean(generic),
        "lr_bytes": lr_bytes,
        "weights_bytes": weights_bytes,
        "weights_share": weights_bytes / (lr_bytes + weights_bytes),
        "measured_on": "Y-PSNR per frame (8-bit, whole frame) of the decoded LR restored in fp32, mean over frames",
    }
    report = {
        "mode": options.mode,  # joint: every chunk's steps, seconds and losses are the one joint fit's
        "layout": options.layout,
        "quality": quality,
        "chunks": [
            {
                "index": s.index, "frames": s.frames, "first_pts": s.first_pts, "last_pts": s.last_pts,
                "generic_psnr": _mean(r.generic_psnr), "tuned_psnr": _mean(r.tuned_psnr), "steps": r.steps,
                "fit_seconds": r.seconds, "loss_first": r.losses[0] if r.losses else None,
                "loss_last": float(np.mean(r.losses[-20:])) if r.losses else None,
                "generic_per_frame": list(r.generic_psnr), "tuned_per_frame": list(r.tuned_psnr),
            }
            for s, r in zip(spans, results)
        ],
        "cost": costs,
        "settings": {"deliver": _jsonable(asdict(options))},
    }  # fmt: skip
    (staging / REPORT).write_text(json.dumps(report, indent=1, allow_nan=False, default=str) + "\n")
    write_chart(staging / CHART, [r.generic_psnr for r in results], [r.tuned_psnr for r in results])
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "factor": base.factor,
        "down": options.down,
        "master_size": [int(base.hr[1]), int(base.hr[0])],
        "lr_size": [int(lr.shape[1]), int(lr.shape[0])],
        "time_base": str(facts.time_base),
        "frame_rate": str(facts.rate) if facts.rate else None,
        "lr_offset": lr.offset,  # seconds; the client's output is moved back by it
        "layout": options.layout,
        "joint": options.joint,
        "architecture": {
            "model": "corrected",
            "base": {"kind": base.kind, "weights": base.weights, "sha256": shipped_sha(base.weights)},
            "correction": {"scale": base.factor, "features": options.fit.features, "blocks": options.fit.blocks},
            "dtype": "float16",
            "training": {k: v for k, v in asdict(options.fit).items() if k != "threads"},
        },
        "video": lr.video,
        "chunks": chunk_entries,
        "quality": quality,
        "files": [file_entry(staging / REPORT), file_entry(staging / CHART)],
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, allow_nan=False) + "\n")
    if options.layout == "embed":
        weights = sorted({e["file"] for e in chunk_entries})
        write_embedded(staging, staging / EMBEDDED, [MANIFEST, *weights, REPORT, CHART])
    return {
        "generic_psnr": quality["generic_psnr"],
        "tuned_psnr": quality["tuned_psnr"],
        "lr_bytes": lr_bytes,
        "weights_bytes": weights_bytes,
    }


def _write_modulation_package(
    staging: Path, facts, spans, results, base: BaseModel, options: DeliverOptions, lr: _Lr, costs: dict,
    title: TitleFit, lr_path: Path,
) -> dict:  # fmt: skip
    """A package of modulation codes: the files that pay, a manifest kept small (every byte of it is
    fetched by the client: figures and settings go to the report)."""
    from ..io.keyframes import video_bytes
    from ..weights.shipped import shipped_sha

    title_entry, chunk_entries, decisions = write_codes(
        staging, title, results, spans, lr_path, options.db_per_doubling
    )
    weights = [e for e in [title_entry, *chunk_entries] if e and e.get("file")]
    weights_bytes = sum(e["size"] for e in weights)
    features, blocks = start_shape(options.fit)
    manifest = {
        "format": FORMAT, "version": VERSION, "factor": base.factor, "down": options.down,
        "master_size": [int(base.hr[1]), int(base.hr[0])], "lr_size": [int(lr.shape[1]), int(lr.shape[0])],
        "time_base": str(facts.time_base), "frame_rate": str(facts.rate) if facts.rate else None,
        "lr_offset": lr.offset, "layout": options.layout, "joint": False, "weights_format": "modulation",
        "architecture": {
            "model": "corrected",
            "base": {"kind": base.kind, "weights": base.weights, "sha256": shipped_sha(base.weights)},
            "correction": {"scale": base.factor, "features": features, "blocks": blocks},
            "dtype": "int8",
            "start": {"weights": options.fit.start, "sha256": shipped_sha(options.fit.start)},
        },
        "video": lr.video, "title": title_entry, "chunks": chunk_entries,
    }  # fmt: skip
    (staging / MANIFEST).write_bytes(lean_manifest.dump(manifest))
    generic = [p for r in results for p in r.generic_psnr]
    tuned = effective_psnr(results, decisions)
    video = video_bytes(str(lr_path))
    quality = {
        "generic_psnr": _mean(generic), "tuned_psnr": _mean(tuned), "gain_db": _mean(tuned) - _mean(generic),
        "lr_bytes": lr.bytes, "video_bytes": video, "weights_bytes": weights_bytes,
        "manifest_bytes": (staging / MANIFEST).stat().st_size, "weights_share_of_video": weights_bytes / max(1, video),
        "generic_is": f"{base.weights} alone", "tuned_is": f"{options.fit.start} with the codes that ship",
        "measured_on": "Y-PSNR per frame (8-bit, whole frame) of the decoded LR restored in fp32, mean over frames",
    }  # fmt: skip
    report = {
        "mode": "modulation", "layout": options.layout, "quality": quality,
        "weights": [
            {"what": "title" if k == 0 else f"chunk {k - 1}", "gain_db": d.gain_db, "bytes": d.bytes,
             "lr_bytes": d.lr_bytes, "ships": d.ships}
            for k, d in enumerate(decisions)
        ],
        "chunks": [
            {"index": s.index, "frames": s.frames, "first_pts": s.first_pts, "last_pts": s.last_pts,
             "generic_psnr": _mean(r.generic_psnr), "title_psnr": _mean(r.start_psnr), "tuned_psnr": _mean(r.tuned_psnr),
             "steps": r.steps, "fit_seconds": r.seconds}
            for s, r in zip(spans, results)
        ],
        "title_fit": {"steps": title.result.steps, "seconds": title.result.seconds, "frames": len(title.result.tuned_psnr)},
        "cost": costs, "settings": {"deliver": _jsonable(asdict(options))},
    }  # fmt: skip
    (staging / REPORT).write_text(json.dumps(report, indent=1, allow_nan=False, default=str) + "\n")
    per_chunk = [r.tuned_psnr if d.ships else r.start_psnr for r, d in zip(results, decisions[1:])]
    write_chart(staging / CHART, [r.generic_psnr for r in results], per_chunk)
    if options.layout == "embed":
        write_embedded(staging, staging / EMBEDDED, [MANIFEST, *[e["file"] for e in weights], REPORT, CHART])
    return {"generic_psnr": quality["generic_psnr"], "tuned_psnr": quality["tuned_psnr"], "lr_bytes": lr.bytes,
            "weights_bytes": weights_bytes}  # fmt: skip


def _costs(clock: dict, seconds_of_video: float) -> dict:
    """Server seconds per stage, in all and per minute of video."""
    minutes = seconds_of_video / 60
    return {
        "seconds": dict(clock),
        "seconds_per_minute_of_video": {k: v / minutes for k, v in clock.items()},
        "video_seconds": seconds_of_video,
    }


def _check_target(master: str | None, target: Path, layout: str) -> None:
    """Refuse, before any work, a target that is the master, cannot be written, or is something
    other than a package of this layout (which is replaced whole)."""
    if not target.parent.is_dir():
        raise OutputError(f"output folder {target.parent} does not exist")
    if master is not None and target.exists() and target.resolve() == Path(master).resolve():
        raise OutputError(f"output {target} is the input: choose another name")
    if layout == "embed":
        if target.suffix.lower() != ".mkv":
            raise InvalidOption(f"--embed writes one Matroska file: -o {target} should end in .mkv")
        if target.is_dir() or (target.exists() and not holds_package(target)):
            raise OutputError(f"{target} exists and is not an embedded delivery package: not replacing it")
    elif target.exists() and (not target.is_dir() or (not (target / MANIFEST).is_file() and any(target.iterdir()))):
        raise OutputError(f"{target} exists and is not a delivery package: not replacing it")


def _move_into_place(staging: Path, target: Path, layout: str) -> None:
    """Rename the finished package over ``target`` (an older package there is replaced whole)."""
    _check_target(None, target, layout)  # again: something may have appeared there meanwhile
    if layout == "embed":
        os.replace(staging / EMBEDDED, target)
        shutil.rmtree(staging, ignore_errors=True)
        return
    replace_folder(staging, target)


def replace_folder(staging: Path, target: Path) -> None:
    """Rename the folder ``staging`` over ``target``; an older one there is moved aside first and
    removed after, so ``target`` is always whole."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _mean(values) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else 0.0


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
