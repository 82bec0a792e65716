"""The same jobs on a real local Ray (two CPUs, no mock): a batch with a corrupt file, a split run
checked frame by frame against a single-process run, and a part whose worker process is killed
mid-run (SIGKILL) and retried by Ray with the result still exact."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'vsr-pipe[ray]')")

from tests.integration.test_jobs_split import X2, assert_same_run, time_limit, vfr_pts  # noqa: E402, F401
from tests.media import make_clip  # noqa: E402
from vsr_pipe.io.segments import SegmentSource  # noqa: E402
from vsr_pipe.jobs.batch import BatchJob, process_job, run_batch  # noqa: E402
from vsr_pipe.jobs.split import PartTask, encode_part, split_run  # noqa: E402
from vsr_pipe.pipeline.run import run_to_file  # noqa: E402
from vsr_pipe.runners import RayRunner  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module: two CPUs, no dashboard; this module's functions travel by value
    (the workers need not import the tests)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def test_batch_of_three_with_one_corrupt(tmp_path):
    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "a.mp4", frames=12)
    make_clip(tmp_path / "in" / "b.mkv", frames=10, pts=vfr_pts(10))
    (tmp_path / "in" / "c.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    seen, live = [], []
    summary = run_batch(
        [str(tmp_path / "in")], tmp_path / "out", X2, RayRunner("auto"), on_item=lambda r, n, t: seen.append((n, t)),
        on_frames=lambda frames, seconds: live.append(frames),
    )  # fmt: skip
    assert summary.counts() == {"done": 2, "skipped": 0, "failed": 1}
    assert not summary.ok
    failed = [i for i in summary.items if i.status == "failed"]
    assert failed[0].source.endswith("c.mp4") and "c.mp4" in failed[0].error and "\n" not in failed[0].error
    done = {Path(i.output).name: i for i in summary.items if i.status == "done"}
    assert done["a.mp4"].frames == 12 and done["b.mkv"].frames == 10
    assert seen[-1] == (3, 3)
    assert live and live[-1] == 22 and live == sorted(live)  # frames of all workers, counted by a Ray actor
    again = run_batch([str(tmp_path / "in")], tmp_path / "out", X2, RayRunner("auto"))
    assert again.counts() == {"done": 0, "skipped": 2, "failed": 1}


def test_batch_reads_an_http_input(tmp_path):
    (tmp_path / "served").mkdir()
    make_clip(tmp_path / "served" / "clip.mkv", frames=8)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mkv"
        summary = run_batch([url, url.replace("clip", "gone")], tmp_path / "out", X2, RayRunner("auto"))
    finally:
        server.shutdown()
    assert [(i.status, Path(i.output).name) for i in summary.items] == [("done", "clip.mkv"), ("failed", "gone.mkv")]
    assert summary.items[0].frames == 8 and "gone.mkv" in summary.items[1].error


def test_split_on_ray_equals_single_run(tmp_path):
    src = make_clip(tmp_path / "vfr.mp4", pts=vfr_pts(72), max_b_frames=2, crf=10, gop_size=12).path
    run_to_file(src, tmp_path / "single.mp4", X2)
    summary = split_run(str(src), str(tmp_path / "split.mp4"), X2, parts=4, runner=RayRunner("auto", workers=2))
    assert summary.parts == 4 and summary.frames == 72
    assert min(assert_same_run(tmp_path / "single.mp4", tmp_path / "split.mp4")) > 40


def kill_once(task: PartTask):
    """encode_part, except that the first attempt at the second part kills its own worker process
    (SIGKILL: no exception, no clean-up) once a few frames are encoded."""
    folder = Path(task.source).parent
    with (folder / "attempts.txt").open("a") as log:
        log.write(f"{Path(task.part).name} {os.getpid()}\n")
    if not task.part.endswith("part-00001.nut") or (folder / "killed").exists():
        return encode_part(task)
    (folder / "killed").touch()

    def die(progress):
        if progress.frames >= 4:
            os.kill(os.getpid(), signal.SIGKILL)

    run_to_file(
        SegmentSource(task.source, task.start, task.end_pts, task.frames), task.part, task.options, on_progress=die
    )
    raise AssertionError("the worker should be dead by now")


def test_killed_worker_is_retried_and_the_result_is_exact(tmp_path):
    src = make_clip(tmp_path / "cfr.mkv", frames=48, max_b_frames=2, crf=10, gop_size=12).path
    run_to_file(src, tmp_path / "single.mkv", X2)
    summary = split_run(str(src), str(tmp_path / "split.mkv"), X2, parts=3, runner=RayRunner("auto"), part_fn=kill_once)
    assert summary.frames == 48 and summary.parts == 3
    attempts = [line.split() for line in (tmp_path / "attempts.txt").read_text().splitlines()]
    second = [pid for name, pid in attempts if name == "part-00001.nut"]
    assert len(second) == 2 and second[0] != second[1], attempts  # run again, in a new worker process
    assert min(assert_same_run(tmp_path / "single.mkv", tmp_path / "split.mkv")) > 40


def kill_first_attempt(job: BatchJob):
    """process_job, except that the first attempt at b.mkv kills its worker mid-file, leaving its
    temporary output behind."""
    marker = Path(job.source).parent / "killed"
    if not job.source.endswith("b.mkv") or marker.exists():
        return process_job(job)
    marker.touch()
    Path(job.output).parent.mkdir(parents=True, exist_ok=True)

    def die(progress):
        if progress.frames >= 4:
            os.kill(os.getpid(), signal.SIGKILL)

    run_to_file(job.source, job.output, job.options, on_progress=die)
    raise AssertionError("the worker should be dead by now")


def test_batch_file_whose_worker_dies_is_retried(tmp_path):
    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "a.mp4", frames=8)
    make_clip(tmp_path / "in" / "b.mkv", frames=12, max_b_frames=2, crf=10)
    run_to_file(tmp_path / "in" / "b.mkv", tmp_path / "single.mkv", X2)
    summary = run_batch([str(tmp_path / "in")], tmp_path / "out", X2, RayRunner("auto"), job_fn=kill_first_attempt)
    assert summary.counts() == {"done": 2, "skipped": 0, "failed": 0}
    assert (tmp_path / "in" / "killed").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".vsr-pipe", "a.mp4", "b.mkv"]  # no leftovers
    assert min(assert_same_run(tmp_path / "single.mkv", tmp_path / "out" / "b.mkv")) > 40


def nap(x):
    time.sleep(1.0)
    return x


def test_a_stop_lets_running_tasks_finish_and_starts_no_more():
    stop = threading.Event()
    seen = []
    for outcome in RayRunner("auto").map(nap, list(range(6)), stop=stop):  # 2 CPUs: 2 at a time
        seen.append(outcome.value)
        stop.set()
    assert len(seen) == 2 and all(v is not None for v in seen)


def test_tasks_ask_ray_for_a_gpu_only_when_they_can_use_one():
    from vsr_pipe.config import PipelineOptions
    from vsr_pipe.runners import task_resources

    assert task_resources(PipelineOptions(device="auto"), RayRunner("auto"))[0].num_gpus == 0  # no GPU here
    assert task_resources(PipelineOptions(device="cuda"), RayRunner("auto"))[0].num_gpus == 1
    assert task_resources(PipelineOptions(device="cpu"), RayRunner("auto"))[0].num_gpus == 0
