"""Batch planning without running anything: inputs expanded and named, resume keys, cut choice, and
the in-process runner's one-line failures."""

from __future__ import annotations

import os
import threading
from fractions import Fraction

import pytest

from vsr_pipe.config import EncodeOptions, PipelineOptions, Scale
from vsr_pipe.errors import InvalidOption, NotAVideo
from vsr_pipe.io.segments import Cut, KeyframeIndex
from vsr_pipe.jobs.batch import ItemResult, is_up_to_date, plan_batch, run_batch, write_record
from vsr_pipe.jobs.inputs import BatchInput, expand_inputs, job_key, output_path
from vsr_pipe.jobs.placement import per_task_options
from vsr_pipe.runners import InProcessRunner, ProcessRunner, TaskResources, make_runner, task_resources


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folders_keep_sub_folders_files_and_globs_keep_names(tmp_path):
    touch(tmp_path / "season1" / "ep1.mkv")
    touch(tmp_path / "season2" / "ep2.mkv")
    touch(tmp_path / "season2" / "notes.txt")
    single = touch(tmp_path / "film.mp4")
    got = expand_inputs([str(tmp_path / "season1"), str(single), str(tmp_path / "season2" / "*.mkv")])
    assert [g.name for g in got] == ["ep1.mkv", "film.mp4", "ep2.mkv"]
    by_folder = expand_inputs([str(tmp_path)])
    assert [g.name for g in by_folder] == ["film.mp4", "season1/ep1.mkv", "season2/ep2.mkv"]


def test_two_inputs_that_would_write_one_output_are_refused(tmp_path):
    a, b = touch(tmp_path / "a" / "ep1.mkv"), touch(tmp_path / "b" / "ep1.mkv")
    with pytest.raises(InvalidOption, match="would both write ep1.mkv"):
        expand_inputs([str(a), str(b)])


def test_glob_without_match_and_urls(tmp_path):
    with pytest.raises(InvalidOption, match="no input matches"):
        expand_inputs([str(tmp_path / "*.mkv")])
    url = expand_inputs(["https://example.org/media/clip.mp4?token=1"])[0]
    assert url == BatchInput("https://example.org/media/clip.mp4?token=1", "clip.mp4")
    missing = expand_inputs([str(tmp_path / "gone.mp4")])  # kept: it fails alone, with its line
    assert missing[0].name == "gone.mp4"


def test_output_names_are_predictable(tmp_path):
    item = BatchInput("/x/season1/ep1.mkv", "season1/ep1.mkv")
    assert output_path(tmp_path, item) == tmp_path / "season1" / "ep1.mkv"
    assert output_path(tmp_path, item, "mp4") == tmp_path / "season1" / "ep1.mp4"


def test_job_key_follows_input_and_settings(tmp_path):
    src = touch(tmp_path / "a.mp4", b"one")
    x2 = PipelineOptions(scale=Scale(2, 2))
    key = job_key(str(src), x2)
    assert key == job_key(str(src), PipelineOptions(scale=Scale(2, 2)))
    assert key != job_key(str(src), PipelineOptions(scale=Scale(3, 3)))
    assert key != job_key(str(src), PipelineOptions(scale=Scale(2, 2), encode=EncodeOptions(crf=20)))
    os.utime(src, ns=(1, 1))
    assert key != job_key(str(src), x2)


def test_resume_record_matches_only_the_same_key(tmp_path):
    src = touch(tmp_path / "in" / "a.mp4")
    job = plan_batch(expand_inputs([str(src)]), tmp_path / "out", PipelineOptions())[0]
    assert not is_up_to_date(job.output, job.key)
    touch(tmp_path / "out" / "a.mp4")
    assert not is_up_to_date(job.output, job.key)  # an output with no record is made again
    write_record(job.output, {"key": job.key})
    assert is_up_to_date(job.output, job.key)
    assert not is_up_to_date(job.output, "another")


def test_cuts_chosen_near_equal_shares():
    cuts = tuple(Cut(pts=i * 1000, dts=None, frames_before=i) for i in range(12, 100, 12))
    index = KeyframeIndex(Fraction(1, 1000), 100, cuts)
    assert [c.frames_before for c in index.choose(4)] == [24, 48, 72]
    assert index.choose(1) == ()
    assert [c.frames_before for c in index.choose(50)] == [c.frames_before for c in cuts]  # no more than exist


def test_per_task_threads_unless_chosen():
    opts = per_task_options(PipelineOptions(), 2)
    assert opts.threads == 2 and ("threads", "2") in opts.encode.codec_options
    assert per_task_options(PipelineOptions(threads=4), 2).threads == 4
    assert per_task_options(PipelineOptions(), 0) == PipelineOptions()


def _fails(task):
    if task == "bad":
        raise NotAVideo("bad is not a video")
    if task == "bug":
        raise KeyError("k")
    return task.upper()


def test_in_process_runner_fails_tasks_alone_with_one_line():
    outcomes = list(InProcessRunner().map(_fails, ["a", "bad", "bug", "b"]))
    assert [o.value for o in outcomes] == ["A", None, None, "B"]
    assert [o.error for o in outcomes] == [None, "bad is not a video", "KeyError: 'k'", None]
    assert isinstance(make_runner(None, 1), InProcessRunner)


def test_a_stop_starts_nothing_more():
    stop = threading.Event()
    seen = []
    for outcome in InProcessRunner().map(_fails, ["a", "b", "c"], stop=stop):
        seen.append(outcome.value)
        stop.set()
    assert seen == ["A"]


def _counted(job):
    """A job that reports 5 frames done to its tally and returns."""
    job.tally.add(job.output, 5)
    return ItemResult(job.source, job.output, "done", 5, 0.01)


@pytest.mark.parametrize("runner", [InProcessRunner(), ProcessRunner(2)], ids=["in process", "2 processes"])
def test_live_frames_of_all_workers_reach_the_driver(tmp_path, runner):
    sources = [touch(tmp_path / "in" / f"{n}.mp4") for n in "abc"]
    live = []
    summary = run_batch(
        [str(p) for p in sources], tmp_path / "out", PipelineOptions(), runner, job_fn=_counted,
        on_frames=lambda frames, seconds: live.append(frames),
    )  # fmt: skip
    assert summary.counts()["done"] == 3
    assert live[-1] == 15


def test_gpu_requests_only_on_ray_and_tasks_run_on_the_gpu_they_get():
    cuda1 = PipelineOptions(device="cuda:1")
    assert task_resources(cuda1, InProcessRunner()) == (TaskResources(num_cpus=1, num_gpus=0), 0)
    resources, threads = task_resources(cuda1, ProcessRunner(2))
    assert resources.num_gpus == 0 and threads == max(1, (os.cpu_count() or 1) // 2)
    assert per_task_options(cuda1, 0, resources).device == "cuda:1"  # locally: as the user said
    assert per_task_options(cuda1, 0, TaskResources(num_gpus=1)).device == "cuda"  # Ray: its own GPU
