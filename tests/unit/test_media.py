"""Round-trip tests for the synthetic clip generator in ``tests/media.py``.

Each test writes a tiny clip, reads it back with PyAV and checks that what the
generator promises (pixel values, colour tags, timestamps, side streams) is
really in the file.  Clips are a few frames at small sizes, so the whole file
runs in a few seconds.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

try:
    from tests.media import (
        BAR_YUV,
        MEASURE_ROWS,
        frame_planes,
        make_clip,
        make_corrupt_copy,
        make_truncated_copy,
        mean_bar_yuv,
        read_frames,
    )
except ModuleNotFoundError:  # plain `pytest` does not put the project root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.media import (
        BAR_YUV,
        MEASURE_ROWS,
        frame_planes,
        make_clip,
        make_corrupt_copy,
        make_truncated_copy,
        mean_bar_yuv,
        read_frames,
    )

CONTAINERS = ("mp4", "mkv")
TOL = 2.0  # max |mean - expected| per bar and plane, in 8-bit code values


def assert_bars(frame: av.VideoFrame, width: int, info_bars, *, planes: int = 3) -> None:
    """Mean Y/U/V in every bar centre of ``frame`` is the expected code value (within TOL)."""
    got_planes = frame_planes(frame)
    for bar in info_bars:
        means = mean_bar_yuv(got_planes, bar, width)
        assert len(means) == planes
        for got, want in zip(means, bar[2][:planes], strict=True):
            assert abs(got - want) <= TOL, (bar, means)


# --- pixel formats and bar colours ------------------------------------------


@pytest.mark.parametrize(
    "pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le", "gray", "gray10le"]
)
def test_pix_fmt_and_bars_round_trip(tmp_path: Path, pix_fmt: str) -> None:
    info = make_clip(tmp_path / "c.mp4", frames=3, pix_fmt=pix_fmt, audio=False)
    frames = read_frames(info.path)
    assert len(frames) == info.frames == 3
    f = frames[0]
    assert f.format.name == pix_fmt
    assert (f.width, f.height) == (info.width, info.height) == (160, 96)
    nplanes = 1 if pix_fmt.startswith("gray") else 3
    assert_bars(f, info.width, info.bars, planes=nplanes)
    # Lossless: the raw samples are the exact codes (x4 for 10-bit).
    shift = 2 if "10" in pix_fmt else 0
    y = frame_planes(f)[0]
    for x0, x1, (yv, _, _) in info.bars:
        assert (y[10:60, x0:x1] == yv << shift).all()


def test_bar_layout_matches_constants(tmp_path: Path) -> None:
    info = make_clip(tmp_path / "c.mkv", frames=1, audio=False)
    assert [b[2] for b in info.bars] == list(BAR_YUV)
    edges = [b[0] for b in info.bars] + [info.bars[-1][1]]
    assert edges == [0, 40, 80, 120, 160]


def test_square_moves_outside_measure_rows(tmp_path: Path) -> None:
    info = make_clip(tmp_path / "c.mp4", frames=6, audio=False)
    y0, y5 = (frame_planes(f)[0].astype(int) for f in read_frames(info.path)[::5])
    diff_rows = np.nonzero((y0 != y5).any(axis=1))[0]
    assert diff_rows.size > 0, "no motion"
    assert diff_rows.min() >= info.height * MEASURE_ROWS[1]


@pytest.mark.parametrize(
    ("size", "out_size", "pix_fmt"),
    [((160, 96), (640, 384), "yuv420p"), ((160, 96), (427, 241), "yuv420p10le"), ((853, 481), (1280, 720), "yuv420p")],
)
def test_bars_survive_scaling(tmp_path: Path, size, out_size, pix_fmt: str) -> None:
    """mean_bar_yuv scales bar ranges with the output width, any scale factor."""
    info = make_clip(tmp_path / "c.mkv", width=size[0], height=size[1], frames=1, pix_fmt=pix_fmt, audio=False)
    frame = read_frames(info.path)[0]
    big = frame.reformat(width=out_size[0], height=out_size[1], interpolation="BICUBIC")
    assert (big.width, big.height) == out_size and big.format.name == pix_fmt
    assert_bars(big, info.width, info.bars)


# --- odd sizes --------------------------------------------------------------


@pytest.mark.parametrize("ext", CONTAINERS)
def test_odd_size_420(tmp_path: Path, ext: str) -> None:
    info = make_clip(tmp_path / f"c.{ext}", width=853, height=481, frames=2, audio=False)
    assert info.codec == "ffv1"  # x264 cannot take odd 4:2:0
    f = read_frames(info.path)[0]
    assert (f.width, f.height, f.format.name) == (853, 481, "yuv420p")
    assert [p.shape for p in frame_planes(f)] == [(481, 853), (241, 427), (241, 427)]
    assert_bars(f, 853, info.bars)


def test_odd_size_444_uses_x264(tmp_path: Path) -> None:
    info = make_clip(tmp_path / "c.mp4", width=853, height=481, frames=2, pix_fmt="yuv444p", audio=False)
    assert info.codec == "libx264"
    with av.open(str(info.path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    assert_bars(read_frames(info.path)[0], 853, info.bars)


def test_odd_size_420_x264_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="odd size"):
        make_clip(tmp_path / "c.mp4", width=853, height=481, codec="libx264")


def test_gray_via_x264_decodes_as_yuv420p(tmp_path: Path) -> None:
    """Documents an FFmpeg quirk: monochrome H.264 decodes as yuv420p, neutral chroma."""
    info = make_clip(tmp_path / "c.mp4", frames=1, pix_fmt="gray", codec="libx264", audio=False)
    f = read_frames(info.path)[0]
    assert f.format.name == "yuv420p"
    for bar in info.bars:
        assert mean_bar_yuv(frame_planes(f), bar, info.width) == (bar[2][0], 128.0, 128.0)


# --- colour tags ------------------------------------------------------------

# (range, matrix, primaries, trc) as FFmpeg enum ints
EXPECTED_TAGS = {
    ("limited", "bt709"): (1, 1, 1, 1),
    ("full", "bt709"): (2, 1, 1, 1),
    ("limited", "bt601"): (1, 6, 6, 6),
    ("full", "bt601"): (2, 6, 6, 6),
}


@pytest.mark.parametrize("ext", CONTAINERS)
@pytest.mark.parametrize(("color_range", "colorspace"), list(EXPECTED_TAGS))
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_colour_tags_round_trip(tmp_path: Path, ext: str, color_range: str, colorspace: str, pix_fmt: str) -> None:
    info = make_clip(
        tmp_path / f"c.{ext}",
        frames=1,
        pix_fmt=pix_fmt,
        color_range=color_range,
        colorspace=colorspace,
        audio=False,
    )
    want = EXPECTED_TAGS[(color_range, colorspace)]
    with av.open(str(info.path)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc) == want
        f = next(c.decode(video=0))
    assert (f.color_range, f.colorspace, f.color_primaries, f.color_trc) == want
    assert_bars(f, info.width, info.bars)  # code values do not depend on the tags


def test_colour_tags_odd_size_ffv1(tmp_path: Path) -> None:
    """FFV1 has no colour VUI; the container (MP4 colr / MKV Colour) carries the tags."""
    for ext in CONTAINERS:
        info = make_clip(
            tmp_path / f"c.{ext}", width=85, height=47, frames=1, color_range="full", colorspace="bt601", audio=False
        )
        f = read_frames(info.path)[0]
        assert (f.color_range, f.colorspace, f.color_primaries, f.color_trc) == (2, 6, 6, 6)


# --- timestamps -------------------------------------------------------------


def test_cfr_pts(tmp_path: Path) -> None:
    mp4 = make_clip(tmp_path / "c.mp4", frames=5, fps=24, audio=False)
    assert mp4.time_base == Fraction(1, 90_000)
    assert mp4.pts == (0, 3750, 7500, 11250, 15000)
    mkv = make_clip(tmp_path / "c.mkv", frames=5, fps=24, audio=False)
    assert mkv.time_base == Fraction(1, 1000)
    assert mkv.pts == (0, 42, 83, 125, 167)  # nearest millisecond
    ntsc = make_clip(tmp_path / "n.mp4", frames=3, fps=Fraction(30000, 1001), audio=False)
    assert ntsc.pts == (0, 3003, 6006)


VFR = (0, 3000, 4000, 9000, 9500, 20000, 21000, 30000)


@pytest.mark.parametrize("max_b_frames", [0, 2])
def test_vfr_pts_exact_in_mp4(tmp_path: Path, max_b_frames: int) -> None:
    crf = 10 if max_b_frames else None  # lossless x264 makes no B-frames
    info = make_clip(tmp_path / "c.mp4", pts=VFR, max_b_frames=max_b_frames, crf=crf, audio=False)
    assert info.time_base == Fraction(1, 90_000)
    assert info.pts == VFR
    frames = read_frames(info.path)
    assert [f.pts for f in frames] == list(VFR)
    assert any(f.pict_type == av.video.frame.PictureType.B for f in frames) == bool(max_b_frames)
    assert_bars(frames[-1], info.width, info.bars)


@pytest.mark.parametrize("max_b_frames", [0, 2])
def test_vfr_pts_rounded_to_ms_in_mkv(tmp_path: Path, max_b_frames: int) -> None:
    crf = 10 if max_b_frames else None
    info = make_clip(tmp_path / "c.mkv", pts=VFR, max_b_frames=max_b_frames, crf=crf, audio=False)
    assert info.time_base == Fraction(1, 1000)
    assert info.pts == tuple(round(p / 90) for p in VFR)
    frames = read_frames(info.path)
    assert any(f.pict_type == av.video.frame.PictureType.B for f in frames) == bool(max_b_frames)


def test_lossless_b_frames_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="B-frames"):
        make_clip(tmp_path / "c.mp4", max_b_frames=2)


def test_vfr_nonzero_start_in_mp4(tmp_path: Path) -> None:
    """A non-zero start goes into an edit list in ms: all pts shift < 1 ms, gaps stay exact."""
    pts = tuple(p + 1000 for p in VFR)
    info = make_clip(tmp_path / "c.mp4", pts=pts, audio=False)
    shift = {want - got for want, got in zip(pts, info.pts, strict=True)}
    assert len(shift) == 1 and 0 <= shift.pop() < 90
    # A start that is a whole number of ms survives exactly.
    pts = tuple(p + 900 for p in VFR)
    assert make_clip(tmp_path / "d.mp4", pts=pts, audio=False).pts == pts


def test_coarse_time_base_mp4_keeps_seconds(tmp_path: Path) -> None:
    pts = (0, 1, 3, 4, 7)
    info = make_clip(tmp_path / "c.mp4", pts=pts, time_base=Fraction(1, 24), audio=False)
    assert info.time_base == Fraction(1, 12288)  # MP4 doubles the time scale up to >= 10000
    assert [p * info.time_base for p in info.pts] == [Fraction(p, 24) for p in pts]


def test_pts_must_increase(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="increasing"):
        make_clip(tmp_path / "c.mp4", pts=[0, 10, 10])


# --- audio, subtitles, rotation ---------------------------------------------


@pytest.mark.parametrize(("ext", "codec"), [("mp4", "aac"), ("mkv", "flac")])
def test_audio(tmp_path: Path, ext: str, codec: str) -> None:
    info = make_clip(tmp_path / f"c.{ext}", frames=12, audio=True)
    assert info.has_audio and info.audio_packets > 0
    with av.open(str(info.path)) as c:
        a = c.streams.audio[0]
        assert (a.codec_context.name, a.codec_context.sample_rate, a.codec_context.channels) == (codec, 48_000, 1)
        samples = np.concatenate([f.to_ndarray()[0] for f in c.decode(a)]).astype(np.float64)
    if codec == "flac":
        samples /= 32767  # FLAC decodes to s16
    # 12 frames at 24 fps = 0.5 s (AAC may add a priming frame).
    assert samples.size >= 24_000
    # Judge the middle half: lossy AAC overshoots at the abrupt start/end.
    mid = samples[samples.size // 4 : 3 * samples.size // 4]
    rms = np.sqrt(np.mean(mid**2))
    assert rms == pytest.approx(0.25 / np.sqrt(2), abs=0.01)  # sine of amplitude 0.25
    peak_hz = np.argmax(np.abs(np.fft.rfft(mid))) * 48_000 / mid.size
    assert peak_hz == pytest.approx(440, abs=5)


def test_no_audio(tmp_path: Path) -> None:
    info = make_clip(tmp_path / "c.mp4", frames=2, audio=False)
    assert not info.has_audio and info.audio_packets == 0


@pytest.mark.parametrize(("ext", "codec"), [("mp4", "mov_text"), ("mkv", "subrip")])
def test_subtitles(tmp_path: Path, ext: str, codec: str) -> None:
    info = make_clip(tmp_path / f"c.{ext}", frames=12, subtitles=True)
    assert info.has_subtitles
    with av.open(str(info.path)) as c:
        s = c.streams.subtitles[0]
        assert s.codec_context.codec.name in {codec, "srt"}  # SubRip's decoder is named "srt"
        texts = [sub.ass.decode() for pk in c.demux(s) if pk.size for sub in pk.decode()]
    assert [t.rsplit(",", 1)[-1] for t in texts] == ["First cue", "Second cue"]


def test_no_subtitles_by_default(tmp_path: Path) -> None:
    assert not make_clip(tmp_path / "c.mkv", frames=2, audio=False).has_subtitles


@pytest.mark.parametrize("ext", CONTAINERS)
@pytest.mark.parametrize("rotation", [None, 90, 180, 270])
def test_rotation(tmp_path: Path, ext: str, rotation: int | None) -> None:
    info = make_clip(tmp_path / f"c.{ext}", frames=2, rotation=rotation, audio=False)
    assert info.rotation == (rotation or 0)
    # PyAV reports counter-clockwise degrees in (-180, 180]: 270 -> -90, 180 -> -180.
    assert read_frames(info.path)[0].rotation % 360 == (rotation or 0)


# --- damaged copies ---------------------------------------------------------


def _decode_counts(path: Path) -> tuple[int, int, int]:
    """(video packets, decoded frames, packets whose decode raised)."""
    packets = frames = errors = 0
    with av.open(str(path)) as c:
        for pk in c.demux(video=0):
            packets += bool(pk.size)
            try:
                frames += len(pk.decode())
            except av.InvalidDataError:
                errors += 1
    return packets, frames, errors


@pytest.mark.parametrize("ext", CONTAINERS)
def test_corrupt_copy(tmp_path: Path, ext: str) -> None:
    info = make_clip(tmp_path / f"c.{ext}", frames=24)
    bad = make_corrupt_copy(info.path, tmp_path / f"bad.{ext}", packets=3)
    assert bad.stat().st_size == info.path.stat().st_size
    packets, frames, errors = _decode_counts(bad)
    assert packets == 24  # framing intact: every packet still demuxes
    assert errors >= 1 and frames < 24


def test_truncated_copy(tmp_path: Path) -> None:
    mkv = make_clip(tmp_path / "c.mkv", frames=24)
    cut = make_truncated_copy(mkv.path, tmp_path / "cut.mkv", fraction=0.6)
    assert cut.stat().st_size == int(mkv.path.stat().st_size * 0.6)
    _, frames, _ = _decode_counts(cut)
    assert 0 < frames < 24
    # MP4 keeps its index at the end, so a truncated MP4 does not open at all.
    mp4 = make_clip(tmp_path / "c.mp4", frames=24)
    cut = make_truncated_copy(mp4.path, tmp_path / "cut.mp4")
    with pytest.raises(av.InvalidDataError):
        av.open(str(cut)).close()
