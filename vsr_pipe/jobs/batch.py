"""Many files, one output each, on a runner: planned here, each file a task that calls the public
pipeline (``run_to_file``) where the worker is. Resumable: each finished output gets a record under
``OUT_DIR/.vsr-pipe/`` with its job key; a later batch skips an output whose record holds the same key.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import PipelineOptions
from ..errors import VsrPipeError
from ..runners import InProcessRunner, Outcome, Runner, task_resources
from .inputs import BatchInput, expand_inputs, job_key, output_path
from .placement import check_reachable, per_task_options

RECORDS = ".vsr-pipe"


@dataclass(frozen=True)
class BatchJob:
    """One file's task: everything a worker needs, picklable."""

    source: str
    output: str
    key: str
    options: PipelineOptions
    tally: object | None = None  # a runner's Tally: the frames done so far, live


@dataclass(frozen=True)
class ItemResult:
    """How one input ended: "done", "skipped" (an up-to-date output was there) or "failed"."""

    source: str
    output: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    worker: str = ""


@dataclass(frozen=True)
class BatchSummary:
    items: tuple[ItemResult, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(i.status != "failed" for i in self.items)

    @property
    def frames(self) -> int:
        return sum(i.frames for i in self.items if i.status == "done")

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, int]:
        return {s: sum(i.status == s for i in self.items) for s in ("done", "skipped", "failed")}


def record_path(output: str | os.PathLike) -> Path:
    out = Path(output)
    return out.parent / RECORDS / f"{out.name}.json"


def is_up_to_date(output: str | os.PathLike, key: str) -> bool:
    """The output exists and its record says it was made from the same input and settings."""
    try:
        return Path(output).is_file() and json.loads(record_path(output).read_text())["key"] == key
    except (OSError, ValueError, KeyError):
        return False


def plan_batch(
    inputs: list[BatchInput], out_dir: str | os.PathLike, options: PipelineOptions, suffix: str | None = None
) -> list[BatchJob]:
    """One job per input, in input order."""
    return [
        BatchJob(item.spec, str(output_path(out_dir, item, suffix)), job_key(item.spec, options), options)
        for item in inputs
    ]


def process_job(job: BatchJob) -> ItemResult:
    """Run one file where this worker is; raises the pipeline's typed errors (the runner turns them
    into the item's one line). Says which worker when the input or the output folder is not there."""
    from ..pipeline.run import run_to_file

    check_reachable(job.source, job.output)
    Path(job.output).parent.mkdir(parents=True, exist_ok=True)
    report = _reporter(job.tally, job.output) if job.tally is not None else None
    summary = run_to_file(job.source, job.output, job.options, on_progress=report)
    if job.tally is not None:
        job.tally.add(job.output, summary.frames)
    write_record(job.output, {"key": job.key, "input": job.source, "frames": summary.frames})
    remove_leftovers(job.output)
    return ItemResult(job.source, job.output, "done", summary.frames, summary.seconds)


def _reporter(tally, key: str, every_s: float = 1.0):
    """An on_progress that passes the frame count to ``tally`` at most once every ``every_s``."""
    last = [0.0]

    def report(progress) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            tally.add(key, progress.frames)

    return report


def remove_leftovers(output: str) -> None:
    """The temporary files of earlier attempts at ``output`` whose worker died before renaming them."""
    out = Path(output)
    for stale in out.parent.glob(f".{glob.escape(out.stem)}.partial-*{glob.escape(out.suffix)}"):
        stale.unlink(missing_ok=True)


def write_record(output: str, record: dict) -> None:
    """The resume record, written beside the output's folder and renamed into place."""
    path = record_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text(json.dumps(record))
    os.replace(temp, path)


def run_batch(
    args: list[str],
    out_dir: str | os.PathLike,
    options: PipelineOptions,
    runner: Runner | None = None,
    *,
    suffix: str | None = None,
    split: int | str | None = None,
    cpus_per_task: float | None = None,
    on_item: Callable[[ItemResult, int, int], None] | None = None,
    stop: threading.Event | None = None,
    job_fn: Callable[[BatchJob], ItemResult] = process_job,
    on_frames: Callable[[int, float], None] | None = None,
) -> BatchSummary:
    """Rescale every input of ``args`` (files, folders, globs, http(s) URLs) into ``out_dir``.

    Outputs already made from the same input and settings are skipped; an input that fails ends as
    "failed" with its line while the others go on. Without ``split`` each file is one task; with it
    the files are taken one after another, each cut in time across all the workers. ``on_item(result,
    ended, total)`` is called as each input ends. Setting ``stop`` starts no new input; those not
    started are left out of the summary. ``job_fn`` runs each file (``process_job``; tests hand in
    one that kills its worker). ``on_frames(frames, seconds)``, called about once a second from
    another thread, gives the frames all workers have done so far (files made one per task only)."""
    runner = runner or InProcessRunner()
    stop = stop or threading.Event()
    started = time.perf_counter()
    jobs = plan_batch(expand_inputs(args), out_dir, options, suffix)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    results: dict[int, ItemResult] = {}

    def ended(i: int, result: ItemResult) -> None:
        results[i] = result
        if on_item:
            on_item(result, len(results), len(jobs))

    todo = []
    for i, job in enumerate(jobs):
        if is_up_to_date(job.output, job.key):
            ended(i, ItemResult(job.source, job.output, "skipped"))
        else:
            todo.append(i)
    if split is not None:
        for i in todo:
            if stop.is_set():
                break
            ended(i, _split_job(jobs[i], split, runner, cpus_per_task))
    else:
        resources, threads = task_resources(options, runner, cpus_per_task)
        tally = runner.tally() if on_frames and todo else None
        tasks = [
            dataclasses.replace(jobs[i], options=per_task_options(jobs[i].options, threads, resources), tally=tally)
            for i in todo
        ]
        watch = _Watch(tally, on_frames, started) if tally is not None else None
        outcomes = runner.map(job_fn, tasks, resources, stop)  # a stop: what runs finishes, nothing starts
        try:
            for outcome in outcomes:
                ended(todo[outcome.index], _item_result(jobs[todo[outcome.index]], outcome))
        finally:
            outcomes.close()
            if watch is not None:
                watch.finish()
    ordered = tuple(results[i] for i in sorted(results))
    return BatchSummary(ordered, time.perf_counter() - started)


class _Watch:
    """Reads a tally about once a second on its own thread and hands the total on."""

    def __init__(self, tally, on_frames: Callable[[int, float], None], started: float, every_s: float = 1.0):
        self.tally, self.on_frames, self.started, self.every_s = tally, on_frames, started, every_s
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="vsr-batch-progress", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(self.every_s):
            self._tell()

    def _tell(self) -> None:
        try:
            self.on_frames(self.tally.total(), time.perf_counter() - self.started)
        except Exception:  # noqa: BLE001 (progress is best effort: never end the batch for it)
            pass

    def finish(self) -> None:
        """Stop watching, after one last count."""
        self.done.set()
        self.thread.join(timeout=5)
        self._tell()


def _split_job(job: BatchJob, split: int | str, runner: Runner, cpus_per_task: float | None) -> ItemResult:
    from .split import split_run

    try:
        Path(job.output).parent.mkdir(parents=True, exist_ok=True)
        summary = split_run(job.source, job.output, job.options, split, runner, cpus_per_task=cpus_per_task)
    except VsrPipeError as e:
        return ItemResult(job.source, job.output, "failed", error=str(e))
    write_record(job.output, {"key": job.key, "input": job.source, "frames": summary.frames})
    return ItemResult(job.source, job.output, "done", summary.frames, summary.seconds)


def _item_result(job: BatchJob, outcome: Outcome) -> ItemResult:
    if outcome.ok:
        return dataclasses.replace(outcome.value, worker=outcome.worker)
    return ItemResult(
        job.source, job.output, "failed", seconds=outcome.seconds, error=outcome.error, worker=outcome.worker
    )
