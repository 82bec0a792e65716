"""One file split in time at keyframes and joined without re-encoding gives what one run over the
whole file gives: the same frame count, the same timestamps, the same audio and subtitle packets,
and pictures within the encoder's noise (identical with a lossless codec). Runs in this process;
the Ray runs are in test_jobs_ray.py."""

from __future__ import annotations

import signal
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import make_clip
from vsr_pipe.config import EncodeOptions, PipelineOptions, Scale
from vsr_pipe.io.base import Frame
from vsr_pipe.io.segments import SegmentSource, index_keyframes
from vsr_pipe.jobs.split import split_run
from vsr_pipe.pipeline.run import run_to_file
from vsr_pipe.runners import InProcessRunner

X2 = PipelineOptions(scale=Scale(2, 2), model="bicubic")


@pytest.fixture(autouse=True)
def time_limit():
    """Each test ends within 120 s, whatever happens."""

    def expire(signum, frame):
        raise TimeoutError("test ran over 120 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def vfr_pts(frames: int) -> list[int]:
    """Irregular gaps (1/90000 s) repeating every 12 frames: 30, 20, 15 and 10 fps mixed."""
    gaps = [3000, 1500, 4500, 3000, 1500, 9000, 1500, 3000, 1500, 9000, 3000, 4500]
    pts = [0]
    for i in range(frames - 1):
        pts.append(pts[-1] + gaps[i % len(gaps)])
    return pts


def decoded(path) -> tuple[list[int], list[np.ndarray], object]:
    """The video's decoded pts and Y planes, and its time base."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        return [f.pts for f in frames], [f.to_ndarray(format="gray") for f in frames], stream.time_base


def copied(path) -> list[tuple[str, int, bytes]]:
    """Audio and subtitle packets as (type, pts, payload)."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type in ("audio", "subtitle")]
        if not streams:
            return []
        return [(p.stream.type, p.pts, bytes(p)) for p in c.demux(streams) if p.size]


def stream_facts(path) -> tuple:
    """Size, pixel format, colour tags and rotation of the video as a decoder sees them."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        first = next(c.decode(s))
        cc = s.codec_context
        return (s.width, s.height, cc.pix_fmt, cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc,
                first.rotation, dict(s.metadata).get("language"))  # fmt: skip


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def assert_same_run(single, split) -> list[float]:
    """Frame count, pts and copied packets equal; returns the per-frame Y-PSNR of split vs single."""
    pts_a, y_a, tb_a = decoded(single)
    pts_b, y_b, tb_b = decoded(split)
    assert tb_a == tb_b
    assert len(pts_b) == len(pts_a)
    assert pts_b == pts_a
    assert copied(split) == copied(single)
    assert stream_facts(split) == stream_facts(single)
    return [psnr(a, b) for a, b in zip(y_a, y_b)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, clip",
    [
        ("cfr.mkv", dict(frames=72, max_b_frames=2, crf=10, gop_size=12, subtitles=True, colorspace="bt601")),
        ("vfr.mp4", dict(pts=vfr_pts(72), max_b_frames=2, crf=10, gop_size=12, color_range="full", rotation=90)),
    ],
)
def test_split_equals_single_run(tmp_path, name, clip):
    src = make_clip(tmp_path / name, **clip).path
    single, split = tmp_path / f"single{src.suffix}", tmp_path / f"split{src.suffix}"
    run_to_file(src, single, X2)
    summary = split_run(str(src), str(split), X2, parts=4, runner=InProcessRunner())
    assert summary.parts == 4 and summary.frames == 72
    quality = assert_same_run(single, split)
    assert min(quality) > 40, quality
    assert not list(tmp_path.glob(".*parts*")), "the part folder is removed after the join"


@pytest.mark.slow
def test_split_with_a_lossless_codec_is_identical(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=48, max_b_frames=2, crf=10, gop_size=12, audio=True).path
    lossless = PipelineOptions(scale=Scale(2, 2), model="bicubic", encode=EncodeOptions(codec="ffv1"))
    run_to_file(src, tmp_path / "single.mkv", lossless)
    split_run(str(src), str(tmp_path / "split.mkv"), lossless, parts=3)
    assert min(assert_same_run(tmp_path / "single.mkv", tmp_path / "split.mkv")) == 99.0


def test_cuts_are_clean_keyframes_and_a_range_yields_exactly_its_frames(tmp_path):
    info = make_clip(tmp_path / "in.mp4", pts=vfr_pts(36), max_b_frames=2, crf=10, gop_size=12, audio=True)
    index = index_keyframes(str(info.path))
    assert index.frames == 36
    assert [c.frames_before for c in index.cuts] == [12, 24]
    assert [c.pts for c in index.cuts] == [info.pts[12], info.pts[24]]
    first, second = index.cuts
    with SegmentSource(str(info.path), first, second.pts, frames=12) as part:
        got = [item.pts for item in part.items() if isinstance(item, Frame)]
        assert part.facts.frame_count == 12
    assert got == list(info.pts[12:24])
    with SegmentSource(str(info.path), second, None) as tail:
        assert [item.pts for item in tail.items() if isinstance(item, Frame)] == list(info.pts[24:])


def test_split_refuses_standard_output(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=4, audio=False).path
    with pytest.raises(ValueError, match="writes a file"):
        split_run(str(src), "-", X2)
    assert Path(src).exists()
