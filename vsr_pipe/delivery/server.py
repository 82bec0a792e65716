"""The server side: a master in, a delivery package out.

1. Scan the master: its frames' Y planes and timestamps, scene scores, the chunks (``chunks.py``).
2. Make the LR with the pipeline (irn's learned downscale, or bicubic) and encode it with a keyframe
   at every chunk start, so each chunk decodes on its own.
3. Decode the LR as a client would, and fit a correction network per chunk (``fit.py``), or one
   over all of them (``joint.py``), on the runner the caller gives (this process, local processes,
   Ray: anything with ``map``). Each fit is saved as it ends, and a rerun after an interruption
   reuses those whose inputs hash the same (``resume.py``).
4. Write the package into a temporary folder beside the target and rename it at the end: the
   folder, the HLS folder (``lr.m3u8``, a segment per chunk), or the one Matroska file with the
   manifest and weights attached (``containers.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..config import EncodeOptions, PipelineOptions, Scale
from ..errors import InputNotFound, InvalidOption, OutputError, VsrPipeError
from .chunks import ChunkRules, ChunkSpan, difficulty, scene_scores, split_chunks, thumbnail
from .containers import LR_FILES, holds_package, lr_encode, lr_video, write_embedded
from .fit import BaseModel, ChunkResult, ChunkTask, FitSettings, fit_chunk
from .joint import joint_task, split_result
from .package import FORMAT, LAYOUTS, MANIFEST, VERSION, file_entry
from .report import write_chart
from .resume import ChunkCache, cache_folder, task_key

REPORT, CHART = "report.json", "psnr.png"
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
    Matroska file (``-o NAME.mkv``)."""

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


class _InProcess:
    """The runner when none is given: one task after another, here."""

    @staticmethod
    def map(fn: Callable, tasks: list, resources=None) -> Iterator:
        for i, task in enumerate(tasks):
            try:
                yield _Outcome(i, fn(task), None)
            except VsrPipeError as e:
                yield _Outcome(i, None, str(e))


@dataclass(frozen=True)
class _Outcome:
    index: int
    value: object
    error: str | None


def deliver(
    master: str,
    out: str,
    options: DeliverOptions = DeliverOptions(),
    runner=None,
    on_chunk: Callable[[ChunkDone], None] | None = None,
) -> DeliverySummary:
    """Package ``master`` into ``out``, a folder (a ``.mkv`` file for ``layout="embed"``; see the
    module's docstring). ``runner``: an object with ``map(fn, tasks)`` yielding outcomes with
    ``index``, ``value``, ``error`` (``vsr_pipe.jobs.runners``); None runs the chunks here, one
    after another."""
    from ..io.keyframes import luma_frames, stream_facts

    options.check()
    if not Path(master).is_file():
        raise InputNotFound(f"input not found: {master}")
    target = Path(out)
    _check_target(master, target, options.layout)
    clock: dict[str, float] = {}
    t = time.perf_counter()
    facts = stream_facts(master)
    hr_frames, master_pts = zip(*((y, p) for y, p in luma_frames(master)))
    rate = float(facts.rate) if facts.rate else 25.0
    rules = replace(options.rules, max_frames=max(1, int(round(options.max_seconds * rate))))
    scores = scene_scores([thumbnail(y) for y in hr_frames])
    spans = split_chunks(list(range(len(hr_frames))), scores, rules, [difficulty(y, options.factor) for y in hr_frames])
    clock["scan"] = time.perf_counter() - t
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        t = time.perf_counter()
        keyframes = [master_pts[s.first] for s in spans]
        lr_path = staging / LR_FILES[options.layout]
        make_lr(master, lr_path, _lr_options(options, staging, len(hr_frames)), keyframes)
        clock["lr"] = time.perf_counter() - t
        t = time.perf_counter()
        lr_frames, lr_pts = zip(*((y, p) for y, p in luma_frames(str(lr_path))))
        if len(lr_frames) != len(hr_frames):
            raise DeliveryFailed(f"the LR has {len(lr_frames)} frames, the master {len(hr_frames)}")
        video, lr_bytes, segments = lr_video(staging, options.layout)
        if options.layout == "hls" and len(segments) != len(spans):
            raise DeliveryFailed(
                f"the LR's playlist has {len(segments)} segments for {len(spans)} chunks: the encoder "
                f"({options.encode.codec}) made keyframes inside chunks; --hls needs one that makes none unasked"
            )
        clock["decode"] = time.perf_counter() - t
        spans = [replace(s, first_pts=int(lr_pts[s.first]), last_pts=int(lr_pts[s.last])) for s in spans]
        base = _base_model(options, hr_frames[0].shape, lr_frames[0].shape)
        t = time.perf_counter()
        cache = ChunkCache(cache_folder(target))
        results, reused = _fit_all(spans, lr_frames, hr_frames, base, options, runner, on_chunk, cache)
        clock["fit"] = time.perf_counter() - t
        costs = _costs(clock, len(hr_frames) / rate)
        offset = _lr_offset(lr_path, lr_pts[0], master_pts[0], facts.time_base)
        lr = _Lr(video, lr_bytes, segments, lr_frames[0].shape, offset)
        summary_fields = _write_package(staging, facts, spans, results, base, options, lr, costs)
        _move_into_place(staging, target, options.layout)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # the finished chunks stay in the cache for a rerun
        raise
    cache.remove()
    minutes = len(hr_frames) / rate / 60
    return DeliverySummary(
        output=str(target),
        frames=len(hr_frames),
        chunks=len(spans),
        mode=options.mode,
        layout=options.layout,
        reused=reused,
        seconds=clock,
        server_s_per_minute={k: v / minutes for k, v in clock.items()},
        **summary_fields,
    )


def make_lr(master: str, dst: Path, options: DeliverOptions, keyframes: list[int]) -> None:
    """The LR video: the pipeline's downscale, encoded with a keyframe at each pts in ``keyframes``;
    audio and subtitles copied; irn's LR carries its rescaling tag."""
    from ..io.encode import AvSink, OutputSpec, resolve_codec
    from ..io.tags import TAG, without_tag
    from ..pipeline.run import open_run

    enc = replace(options.encode, codec=resolve_codec(options.encode.codec))
    if options.down == "irn":
        pipeline = PipelineOptions(scale=Scale(options.scale, options.scale), model="irn", refine=options.refine)
    else:
        size = _lr_size(master, options.factor)
        pipeline = PipelineOptions(size=size, model="bicubic")
    pipeline = replace(pipeline, engine=options.engine, threads=options.threads)
    opened = open_run(master, pipeline, for_encode=enc)
    source, plan, run = opened.source, opened.plan, opened.run
    facts = source.facts
    tags = {k: v for k, v in without_tag(source.metadata).items() if k.lower() != "encoder"}
    if plan.output_tag is not None:
        tags[TAG] = plan.output_tag.format()
    spec = OutputSpec(plan.dst, facts.time_base, facts.rate, facts.color, facts.rotation, source.stream_tags)
    with source, AvSink(dst, spec, enc, copy_from=source, metadata=tags, keyframes=frozenset(keyframes)) as sink:
        for chunk in run.chunks():
            planes = chunk.views()
            for k in range(chunk.count):
                sink.write([p[k] for p in planes], chunk.pts[k])
            for packet in chunk.packets:
                sink.copy(packet)
            run.done(chunk)


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
    spans, lr_frames, hr_frames, base, options: DeliverOptions, runner, on_chunk, cache: ChunkCache
) -> tuple[list[ChunkResult], int]:
    """Every chunk's result, in chunk order, and how many were reused: one task per chunk, or one
    joint task split back. A task whose result ``cache`` holds is not fitted again; each fitted one
    is saved there as soon as it ends."""
    settings = options.fit
    if options.joint:
        tasks = [joint_task(spans, lr_frames, hr_frames, base, settings)]
    else:
        tasks = [
            ChunkTask(s.index, np.stack(lr_frames[s.first : s.last + 1]), np.stack(hr_frames[s.first : s.last + 1]), base, settings)
            for s in spans
        ]  # fmt: skip
    results: dict[int, ChunkResult] = {}
    reused_chunks: set[int] = set()

    def finished(result: ChunkResult, reused: bool) -> None:
        parts = split_result(result, spans) if options.joint else [result]
        for part in parts:
            results[part.index] = part
            if reused:
                reused_chunks.add(part.index)
            if on_chunk:
                on_chunk(ChunkDone(len(results), len(spans), spans[part.index], part, options.joint, reused))

    keys = [task_key(t) for t in tasks]
    todo = []
    for task, key in zip(tasks, keys):
        saved = cache.load(key)
        if saved is None:
            todo.append((task, key))
        else:
            finished(saved, reused=True)
    fitting = (
        (runner or _InProcess()).map(fit_chunk, [t for t, _ in todo], _fit_resources(runner, settings)) if todo else ()
    )
    for outcome in fitting:
        task, key = todo[outcome.index]
        if outcome.error is not None:
            what = "the joint fit" if options.joint else f"chunk {task.index}"
            raise DeliveryFailed(f"{what} could not be fitted: {outcome.error}")
        cache.save(key, outcome.value)  # before anything else: an interruption from here on keeps it
        finished(outcome.value, reused=False)
    return [results[k] for k in range(len(spans))], len(reused_chunks)


def _fit_resources(runner, settings):
    """What each fitting task asks its runner for: on Ray, a GPU where the fit runs on one."""
    from ..config import PipelineOptions
    from ..jobs.placement import task_resources
    from ..jobs.runners import TaskResources

    if runner is None or isinstance(runner, _InProcess):
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
    staging: Path, facts, spans, results, base: BaseModel, options: DeliverOptions, lr: _Lr, costs: dict
) -> dict:
    """The weights, report, chart and manifest into ``staging`` (and, embedded, the one .mkv)."""
    from safetensors.numpy import save

    from ..weights.store import shipped_sha

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
