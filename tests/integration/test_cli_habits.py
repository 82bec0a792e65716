"""FFmpeg's habits on the command line: -y/-n for an existing output, -ss/-t to trim, -an/-sn to
leave audio or subtitles out; restore takes upscale's output and engine options."""

from __future__ import annotations

import av
import pytest

from tests.conftest import run_cli

FAST = ("--model", "bicubic", "--scale", "2", "-q")


# Real encodes per case: the slow tier (.ci/run runs it); the fast tier stays under two minutes.
pytestmark = pytest.mark.slow

def streams(path) -> list[str]:
    with av.open(str(path)) as c:
        return [s.type for s in c.streams]


def video_seconds(path) -> list[float]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return [float(f.pts * v.time_base) for f in c.decode(v)]


def test_an_existing_output_is_replaced_by_default_and_with_y_refused_with_n(clip, tmp_path):
    src = clip("in.mp4", frames=6, audio=False)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an older file")
    r = run_cli(src.path, *FAST, "-n", "-o", out)
    assert r.returncode == 1
    assert r.stderr.strip() == f"vsr-pipe: error: output {out} exists: not overwritten (-n; -y replaces it)"
    assert out.read_bytes() == b"an older file"
    r = run_cli(src.path, *FAST, "-o", out)  # the default: what a rename over it always did
    assert r.returncode == 0, r.stderr
    assert len(video_seconds(out)) == 6
    out.write_bytes(b"an older file")
    r = run_cli(src.path, *FAST, "-y", "-o", out)
    assert r.returncode == 0, r.stderr
    assert len(video_seconds(out)) == 6


@pytest.mark.parametrize("start, duration", [("0.5", "1"), ("00:00:00.500", "0:01")])
def test_ss_and_t_trim_by_timestamps(clip, tmp_path, start, duration):
    src = clip("in.mkv", frames=48, fps=24)  # 2 s, frames every 1/24 s
    out = tmp_path / "out.mkv"
    r = run_cli(src.path, *FAST, "-ss", start, "-t", duration, "-o", out)
    assert r.returncode == 0, r.stderr
    got = video_seconds(out)
    assert len(got) == 24  # the frames at 0.5 s up to, not including, 1.5 s
    assert got[0] == pytest.approx(0.0, abs=1e-3)  # moved back by the start, as FFmpeg's -ss does
    assert got[-1] == pytest.approx(23 / 24, abs=2e-3)
    with av.open(str(out)) as c:
        audio = [float(p.pts * p.time_base) for p in c.demux(audio=0) if p.pts is not None]
    # audio is copied whole packets (about 0.1 s each here): the first one that starts in the span
    assert audio and 0 <= audio[0] < 0.1 and audio[-1] < 1.0


def test_a_start_past_the_end_is_one_line(clip, tmp_path):
    src = clip("in.mp4", frames=6, audio=False)
    r = run_cli(src.path, *FAST, "-ss", "00:01:00", "-o", tmp_path / "out.mp4")
    assert (r.returncode, r.stderr.strip()) == (1, f"vsr-pipe: error: start 60 s: {src.path} has no video frame from there on")
    r = run_cli(src.path, *FAST, "-t", "1:xx", "-o", tmp_path / "out.mp4")
    assert r.returncode == 1 and "time '1:xx' is not seconds or HH:MM:SS[.ms]" in r.stderr


def test_an_and_sn_leave_audio_and_subtitles_out(clip, tmp_path):
    src = clip("in.mkv", frames=12, subtitles=True)
    assert streams(src.path) == ["video", "audio", "subtitle"]
    no_audio, no_subs = tmp_path / "no_audio.mkv", tmp_path / "no_subs.mkv"
    assert run_cli(src.path, *FAST, "-an", "-o", no_audio).returncode == 0
    assert run_cli(src.path, *FAST, "-sn", "-o", no_subs).returncode == 0
    assert streams(no_audio) == ["video", "subtitle"]
    assert streams(no_subs) == ["video", "audio"]


@pytest.mark.slow  # a delivery package is fitted first
def test_restore_takes_upscales_output_options(clip, tmp_path):
    master = clip("m.mp4", width=96, height=64, frames=6, audio=False)
    package = tmp_path / "title"
    fit = ("--down", "bicubic", "--budget", "1", "--features", "4", "--blocks", "0", "-q")
    assert run_cli("deliver", master.path, "-o", package, *fit).returncode == 0
    out = tmp_path / "restored.bin"  # no extension: the container is -f's
    opts = ("--pix-fmt", "yuv444p", "-f", "matroska", "--precision", "fp32", "--codec-option", "tune=film", "-q")
    r = run_cli("restore", package, "-o", out, *opts)
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        assert (c.format.name.split(",")[0], c.streams.video[0].codec_context.pix_fmt) == ("matroska", "yuv444p")
        assert c.streams.video[0].codec_context.width == 96
    r = run_cli("restore", package, "-o", out, *opts, "-n", "--bitrate", "300k")
    assert (r.returncode, r.stderr.strip()) == (1, f"vsr-pipe: error: output {out} exists: not overwritten (-n; -y replaces it)")


def test_crf_and_bitrate_are_one_or_the_other(clip, tmp_path):
    src = clip("in.mp4", frames=3, audio=False)
    r = run_cli(src.path, *FAST, "--crf", "20", "--bitrate", "300k", "-o", tmp_path / "out.mp4")
    assert (r.returncode, r.stderr.strip()) == (1, "vsr-pipe: error: give --crf or --bitrate, not both")
