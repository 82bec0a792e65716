"""--model temporal through the pipeline: every frame kept with its timestamp, the state carried
over chunks, a time split frame-exact against one run, and what it cannot do said in one line."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tests.integration.test_jobs_split import assert_same_run
from tests.media import make_clip
from vsr_pipe.config import EncodeOptions, PipelineOptions, Scale
from vsr_pipe.jobs.split import split_run
from vsr_pipe.pipeline.run import run_to_file
from vsr_pipe.runners import InProcessRunner

LOSSLESS = EncodeOptions(codec="ffv1")


def options(model: str, chunk: int = 4) -> PipelineOptions:
    return PipelineOptions(scale=Scale(2, 2), model=model, chunk_frames=chunk, encode=LOSSLESS)


def test_temporal_keeps_every_frame_and_its_time_and_stays_near_espcn(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=24, max_b_frames=2, crf=10, gop_size=12).path
    summary = run_to_file(src, tmp_path / "t.mkv", options("temporal"))
    assert summary.frames == 24 and "recurrent" in summary.engine
    run_to_file(src, tmp_path / "e.mkv", options("espcn"))
    quality = assert_same_run(tmp_path / "e.mkv", tmp_path / "t.mkv")  # same count, pts, streams
    assert min(quality) > 35  # a residual over ESPCN, not another picture
    run_to_file(src, tmp_path / "t1.mkv", options("temporal", chunk=1))
    assert min(assert_same_run(tmp_path / "t.mkv", tmp_path / "t1.mkv")) == 99.0  # chunking changes nothing


@pytest.mark.slow
def test_a_time_split_is_frame_exact_against_one_run(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=36, max_b_frames=2, crf=10, gop_size=12, audio=True).path
    run_to_file(src, tmp_path / "single.mkv", options("temporal"))
    summary = split_run(str(src), str(tmp_path / "split.mkv"), options("temporal"), parts=3, runner=InProcessRunner())
    assert summary.parts == 3 and summary.frames == 36
    # Each part starts its state afresh at its first frame (a reset, as at a cut): the pictures differ
    # there by what the frames before would have added, and nowhere by a frame or a timestamp.
    assert min(assert_same_run(tmp_path / "single.mkv", tmp_path / "split.mkv")) > 35


def test_what_temporal_cannot_do_is_one_line(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=4).path
    for extra, said in [
        (("--scale", "3"), "--model temporal: the recurrent model ships for x2"),
        (("--scale", "2", "--engine", "tensorrt"), "runs on the torch or onnxruntime engine"),
        (("--scale", "2", "--tile", "64"), "no --tile"),
    ]:
        r = run_cli(str(src), "--model", "temporal", *extra, "-o", str(tmp_path / "o.mp4"))
        assert r.returncode != 0 and "Traceback" not in r.stderr and said in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
