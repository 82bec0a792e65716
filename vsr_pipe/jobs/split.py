"""One long file split in time: cut at clean keyframes, each part a task that seeks to its range,
rescales and encodes it; the parts are then joined without re-encoding, with the source's audio and
subtitles copied once. Frame-exact: the same frames and timestamps as one run over the whole file.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..config import PipelineOptions
from ..errors import InvalidOption, OutputError, VsrPipeError
from ..io.encode import check_output_path, resolve_codec
from ..io.segments import PART_SUFFIX, Cut, SegmentSource, index_keyframes, join_parts, part_timeline
from ..runners import InProcessRunner, Runner, task_resources
from .placement import check_reachable, per_task_options

MIN_PART_FRAMES = 48  # below this a part costs more in start-up than it saves


@dataclass(frozen=True)
class PartTask:
    """Frames with pts in ``[start.pts, end_pts)`` of ``source`` into the file ``part``."""

    source: str
    part: str
    start: Cut | None
    end_pts: int | None
    frames: int
    options: PipelineOptions


@dataclass(frozen=True)
class PartResult:
    part: str
    frames: int
    first_pts: int | None  # in the source's time base
    seconds: float
    worker: str
    timeline: tuple[Fraction, list[int]] | None = None  # the part's time base and packet pts, decode order


@dataclass(frozen=True)
class SplitSummary:
    output: str
    frames: int
    parts: int
    seconds: float
    join_seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class SplitFailed(VsrPipeError, RuntimeError):
    """A part could not be made, so the whole cannot be joined."""


def encode_part(task: PartTask) -> PartResult:
    """Run one part where this worker is (a pure function of the task: a retry rewrites the same part)."""
    from ..pipeline.run import run_to_file

    check_reachable(task.source, task.part)
    started = time.perf_counter()
    opening = task.options.source
    source = SegmentSource(task.source, task.start, task.end_pts, task.frames, opening.options, opening.format)
    summary = run_to_file(source, task.part, task.options)
    timeline = part_timeline(task.part)  # read here, where the part is fresh, not again at the join
    return PartResult(
        task.part, summary.frames, source.first_pts, time.perf_counter() - started, socket.gethostname(), timeline
    )


def plan_parts(src: str, options: PipelineOptions, parts: int | str, workers: int, work_dir: Path) -> list[PartTask]:
    """The part tasks: ``parts`` "auto" is two per worker (so the last ones balance the load),
    never under :data:`MIN_PART_FRAMES` frames each; the cuts are the clean keyframes nearest to
    equal shares of the frames."""
    index = index_keyframes(src)
    wanted = int(parts) if str(parts) != "auto" else max(1, 2 * max(1, workers))
    if str(parts) == "auto":
        wanted = max(1, min(wanted, index.frames // MIN_PART_FRAMES))
    cuts = index.choose(wanted)
    bounds: list[Cut | None] = [None, *cuts, None]
    tasks = []
    for k in range(len(bounds) - 1):
        start, end = bounds[k], bounds[k + 1]
        frames = (end.frames_before if end else index.frames) - (start.frames_before if start else 0)
        part = work_dir / f"part-{k:05d}{PART_SUFFIX}"
        tasks.append(PartTask(src, str(part), start, end.pts if end else None, frames, options))
    return tasks


def split_run(
    src: str,
    dst: str,
    options: PipelineOptions,
    parts: int | str = "auto",
    runner: Runner | None = None,
    part_fn: Callable[[PartTask], PartResult] = encode_part,
    cpus_per_task: float | None = None,
    on_part: Callable[[PartResult, int, int], None] | None = None,
) -> SplitSummary:
    """Rescale ``src`` into ``dst`` in time-split parts on ``runner``. The parts are written to a
    hidden folder beside ``dst`` (so on a cluster it must be shared storage) and removed after the
    join. ``part_fn`` runs each part (``encode_part``; tests hand in one that kills its worker)."""
    runner = runner or InProcessRunner()
    if check_output_path(dst, src) is None:
        raise InvalidOption("a split run writes a file: give an output path, not - or a URL")
    started = time.perf_counter()
    target = Path(dst)
    work_dir = target.with_name(f".{target.name}.parts-{os.getpid()}")
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        codec = resolve_codec(options.encode.codec)  # once here: every part must be encoded alike
        encode = dataclasses.replace(options.encode, codec=codec, container_format=None)
        resources, threads = task_resources(options, runner, cpus_per_task)
        part_options = per_task_options(dataclasses.replace(options, encode=encode), threads, resources)
        tasks = plan_parts(src, part_options, parts, runner.workers, work_dir)
        results: list[PartResult | None] = [None] * len(tasks)
        outcomes = runner.map(part_fn, tasks, resources)
        try:
            for outcome in outcomes:
                if not outcome.ok:
                    raise SplitFailed(f"{src}: part {outcome.index + 1} of {len(tasks)} failed: {outcome.error}")
                results[outcome.index] = outcome.value
                if on_part:
                    on_part(outcome.value, sum(r is not None for r in results), len(tasks))
        finally:
            outcomes.close()  # a failed part: the others are cancelled
        done = [r for r in results if r is not None]
        if any(r.frames == 0 for r in done):
            raise SplitFailed(f"{src}: a part came out empty (the keyframe index and the decoder disagree)")
        joined = time.perf_counter()
        timelines = None if any(r.timeline is None for r in done) else [r.timeline for r in done]
        frames = join_parts(
            [r.part for r in done], [r.first_pts for r in done], src, dst, options.encode.container_format, timelines
        )
        join_seconds = time.perf_counter() - joined
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if frames != sum(r.frames for r in done):
        raise OutputError(f"{dst}: joined {frames} frames, the parts hold {sum(r.frames for r in done)}")
    return SplitSummary(str(dst), frames, len(done), time.perf_counter() - started, join_seconds)
