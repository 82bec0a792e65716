"""The main job as a user runs it: `vsr-pipe in --scale S -o out`, then look at what came out."""

from __future__ import annotations

import json
import os
import pty
import threading
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.conftest import SAMPLE, run_cli
from tests.media import frame_planes, make_mpeg2_ts, mean_bar_yuv, read_frames


def probe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        ctx = v.codec_context
        info = {
            "size": (ctx.width, ctx.height),
            "pix_fmt": ctx.pix_fmt,
            "codec": ctx.name,
            "tags": (ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range),
            "time_base": v.time_base,
            "streams": [s.type for s in c.streams],
            "metadata": dict(c.metadata),
        }
    with av.open(str(path)) as c:
        info["pts"] = [f.pts for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        info["audio_packets"] = sum(1 for p in c.demux(audio=0) if p.size) if c.streams.audio else 0
    return info


def seconds(pts, time_base):
    return [float(p * time_base) for p in pts]


def test_upscale_keeps_frames_timestamps_audio_and_colours(clip, tmp_path):
    src = clip("in.mp4", frames=20)
    out = tmp_path / "out.mp4"
    r = run_cli(src.path, "--scale", "2", "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    got = probe(out)
    assert got["size"] == (320, 192)
    assert len(got["pts"]) == 20
    assert seconds(got["pts"], got["time_base"]) == pytest.approx(seconds(src.pts, src.time_base), abs=1e-6)
    assert got["audio_packets"] == src.audio_packets
    assert got["tags"] == (1, 1, 1, 1)
    frame = frame_planes(read_frames(out)[10])
    for bar in src.bars:
        assert np.allclose(mean_bar_yuv(frame, bar, src.width), bar[2], atol=2), bar
    assert not list(tmp_path.glob(".*partial*")), "temporary file left behind"


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_variable_frame_rate_stays_variable(clip, tmp_path):
    pts = [0, 3000, 4500, 10500, 12000, 21000, 22500, 24000, 33000, 36000]
    src = clip("vfr.mp4", frames=len(pts), pts=pts)
    out = tmp_path / "vfr_out.mp4"
    r = run_cli(src.path, "--scale", "1.5", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    got = probe(out)
    assert seconds(got["pts"], got["time_base"]) == pytest.approx(seconds(src.pts, src.time_base), abs=1e-6)


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
@pytest.mark.parametrize("space, rng", [("bt601", "limited"), ("bt709", "full"), ("bt601", "full")])
def test_matrix_and_range_are_kept_and_colours_do_not_shift(clip, tmp_path, space, rng):
    src = clip(f"{space}_{rng}.mp4", frames=6, colorspace=space, color_range=rng, audio=False)
    out = tmp_path / "out.mp4"
    r = run_cli(src.path, "--scale", "2", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    tags = probe(out)["tags"]
    expected_range = 2 if rng == "full" else 1
    expected_space = 6 if space == "bt601" else 1
    assert tags[2] == expected_space and tags[3] == expected_range
    frame = frame_planes(read_frames(out)[3])
    for bar in src.bars:
        assert np.allclose(mean_bar_yuv(frame, bar, src.width), bar[2], atol=2), bar


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
@pytest.mark.parametrize("suffix", [".ts", ".mp4"])
def test_limited_range_of_an_mpeg2_transport_stream_is_kept_without_other_colour_tags(tmp_path, suffix):
    # MPEG-2 tags the range only; x264 wrote no range flag then, and MPEG-TS and MP4 have no other place for it.
    src = make_mpeg2_ts(tmp_path / "in.ts", frames=6)
    out = tmp_path / f"out{suffix}"
    r = run_cli(src, "--scale", "2", "--codec", "libx264", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert probe(out)["tags"] == (2, 2, 2, 1)  # the range kept, nothing invented beside it
    assert read_frames(out)[0].color_range == 1


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_ten_bit_input_gives_ten_bit_output(clip, tmp_path):
    src = clip("deep.mkv", frames=6, pix_fmt="yuv420p10le", audio=False)
    out = tmp_path / "deep_out.mkv"
    r = run_cli(src.path, "--scale", "2", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    got = probe(out)
    assert got["pix_fmt"] == "yuv420p10le"
    frame = frame_planes(read_frames(out)[2])
    for bar in src.bars:
        assert np.allclose(mean_bar_yuv(frame, bar, src.width, bit_depth=10), bar[2], atol=2)


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_odd_size_and_non_integer_asymmetric_scale(clip, tmp_path):
    src = clip("odd.mkv", width=853, height=481, frames=3, audio=False)
    out = tmp_path / "odd_out.mp4"
    r = run_cli(src.path, "--scale", "1.5x2", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert probe(out)["size"] == (1280, 962)  # 1279.5 -> 1280; 962; both even for 4:2:0


@pytest.mark.slow  # over 5 s: run by .ci/run, not by the fast default
def test_lossless_ffv1_444_and_plain_reencode_at_scale_1(clip, tmp_path):
    src = clip("src.mkv", frames=4, audio=False, codec="ffv1")
    out = tmp_path / "same.mkv"
    r = run_cli(src.path, "--scale", "1", "--codec", "ffv1", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    for a, b in zip(read_frames(src.path), read_frames(out)):
        for pa, pb in zip(frame_planes(a), frame_planes(b)):
            assert np.array_equal(pa, pb)
    out444 = tmp_path / "up444.mkv"
    r = run_cli(src.path, "--scale", "2", "--codec", "ffv1", "--pix-fmt", "yuv444p", "-o", out444, "-q")
    assert r.returncode == 0, r.stderr
    got = probe(out444)
    assert got["pix_fmt"] == "yuv444p" and got["size"] == (320, 192)


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_subtitles_and_audio_are_copied_not_reencoded(clip, tmp_path, container):
    src = clip(f"subs.{container}", frames=24, subtitles=True)
    out = tmp_path / f"out.{container}"
    r = run_cli(src.path, "--scale", "2", "--model", "bicubic", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    with av.open(str(src.path)) as a, av.open(str(out)) as b:
        assert [s.type for s in b.streams] == [s.type for s in a.streams]
        for sa, sb in zip(a.streams, b.streams):
            if sa.type != "video":
                assert sb.codec_context.name == sa.codec_context.name
        audio_in = [bytes(p) for p in a.demux(audio=0) if p.size]
        audio_out = [bytes(p) for p in b.demux(audio=0) if p.size]
    assert audio_in == audio_out, "audio packets must be byte-identical copies"


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_rotation_is_kept(clip, tmp_path):
    src = clip("rot.mp4", frames=4, rotation=90, audio=False)
    out = tmp_path / "rot_out.mp4"
    r = run_cli(src.path, "--scale", "2", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    frame = read_frames(out)[0]
    assert frame.rotation % 360 == src.rotation % 360 == 90
    assert (frame.width, frame.height) == (320, 192)


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_size_option_and_json_summary(clip, tmp_path):
    src = clip("in.mp4", frames=5, audio=False)
    out = tmp_path / "sized.mp4"
    r = run_cli(src.path, "--size", "200x120", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    import json

    summary = json.loads(r.stdout)
    assert summary["frames"] == 5 and summary["output_size"] == [200, 120]
    assert {"seconds", "fps", "model", "engine", "output"} <= summary.keys()


def test_x265_says_nothing_under_quiet(clip, tmp_path):
    # x265 writes its banner and notes to stderr itself, past FFmpeg's (silent) log.
    src = clip("in.mp4", frames=3, audio=False)
    r = run_cli(src.path, "--model", "bicubic", "--codec", "libx265", "-o", tmp_path / "out.mp4", "-q")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert probe(tmp_path / "out.mp4")["codec"] == "hevc"


def test_progress_line_names_the_output_and_its_size(clip, tmp_path):
    """The bar shows on a terminal only: stderr is a pseudo-terminal here, read as the run writes."""
    src = clip("in.mp4", frames=4, audio=False)
    leader, follower = pty.openpty()
    seen = bytearray()
    reader = threading.Thread(target=_read_all, args=(leader, seen), daemon=True)
    reader.start()
    r = run_cli(src.path, "--model", "bicubic", "-o", tmp_path / "out.mkv", stderr=follower)
    os.close(follower)
    reader.join(timeout=10)
    os.close(leader)
    assert r.returncode == 0
    assert "in.mp4 -> out.mkv 320x192 [" in seen.decode(errors="replace"), seen


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the terminal's other end is closed
            return
        if not data:
            return
        into.extend(data)


def test_eval_video_without_ssim_says_nothing_of_ssim(clip, tmp_path):
    a, b = clip("a.mp4", frames=3, audio=False).path, clip("b.mp4", frames=3, audio=False, crf=40).path
    text = run_cli("eval", "video", a, b, "--no-ssim")
    assert text.returncode == 0, text.stderr
    assert "SSIM" not in text.stdout and "nan" not in text.stdout.lower()
    assert text.stdout.splitlines()[-1].startswith("3 frames: mean ")
    as_json = run_cli("eval", "video", a, b, "--no-ssim", "--json")
    summary = json.loads(as_json.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert summary["frames"] == 3 and "mean_ssim" not in summary and "ssim" not in summary


def test_the_sample_readme_describes_the_sample_audio_as_it_is():
    with av.open(str(SAMPLE)) as container:
        audio = container.streams.audio[0]
        layout, channels, rate = audio.layout.name, audio.channels, audio.rate
    text = (SAMPLE.parent / "README.md").read_text()
    assert f"AAC {layout} track ({channels} channels, {rate // 1000} kHz)" in text


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_stdin_to_stdout(clip, tmp_path):
    src = clip("pipe.mkv", frames=6)
    with open(src.path, "rb") as fin, open(tmp_path / "piped.mkv", "wb") as fout:
        r = run_cli("-", "--scale", "2", "-f", "matroska", "-o", "-", "-q", stdin=fin, stdout=fout, text=False)
    assert r.returncode == 0, r.stderr
    got = probe(tmp_path / "piped.mkv")
    assert len(got["pts"]) == 6 and got["size"] == (320, 192) and got["audio_packets"] == src.audio_packets


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_metadata_of_the_container_is_kept(clip, tmp_path):
    src = clip("meta.mkv", frames=3, audio=False)
    with av.open(str(src.path)) as c:
        title_in = dict(c.metadata)
    out = tmp_path / "meta_out.mkv"
    assert run_cli(src.path, "-o", out, "-q").returncode == 0
    title_out = probe(out)["metadata"]
    for key, value in title_in.items():
        if key.lower() not in ("encoder",):
            assert title_out.get(key) == value
    assert Fraction(1, 1)  # keep import used


@pytest.mark.slow  # over 5 s: run by .ci/run, not by the fast default
def test_tiled_run_gives_the_same_frames_as_whole_frames(clip, tmp_path):
    src = clip("in.mkv", width=96, height=64, frames=3, audio=False, codec="ffv1")
    whole, tiled = tmp_path / "whole.mkv", tmp_path / "tiled.mkv"
    assert run_cli(src.path, "-m", "espcn", "--codec", "ffv1", "-o", whole, "-q").returncode == 0
    assert run_cli(src.path, "-m", "espcn", "--codec", "ffv1", "--tile", "24", "-o", tiled, "-q").returncode == 0
    for a, b in zip(read_frames(whole), read_frames(tiled)):
        for pa, pb in zip(frame_planes(a), frame_planes(b)):
            assert np.array_equal(pa, pb)


@pytest.mark.slow  # over 5 s: run by .ci/run, not by the fast default
def test_chapters_and_video_stream_tags_are_kept(clip, tmp_path):
    src = clip("plain.mkv", frames=24, audio=True)
    tagged = tmp_path / "tagged.mkv"
    with av.open(str(src.path)) as a, av.open(str(tagged), "w") as b:  # remux, adding chapters and tags
        streams = {s.index: b.add_stream_from_template(s) for s in a.streams}
        streams[0].metadata["language"] = "fra"
        streams[0].metadata["title"] = "main camera"
        b.set_chapters([
            {"id": 1, "start": 0, "end": 500, "time_base": Fraction(1, 1000), "metadata": {"title": "Opening"}},
            {"id": 2, "start": 500, "end": 1000, "time_base": Fraction(1, 1000), "metadata": {"title": "End"}},
        ])  # fmt: skip
        for packet in a.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                b.mux(packet)
    out = tmp_path / "out.mkv"
    r = run_cli(tagged, "--scale", "2", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        assert [ch["metadata"].get("title") for ch in c.chapters()] == ["Opening", "End"]
        assert c.streams.video[0].metadata.get("title") == "main camera"
        assert c.streams.video[0].language == "fra"
