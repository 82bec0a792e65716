"""`--codec auto` picks an encoder that works here; pixel formats follow the input where the codec can."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vsr_pipe.errors import InvalidOption
from vsr_pipe.io.encode import pick_pix_fmt, resolve_codec


def test_auto_codec_is_an_encoder_that_encodes_a_frame_here():
    name = resolve_codec("auto")
    ctx = av.CodecContext.create(name, "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 64, 48, "yuv420p", Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 128, np.uint8), format="rgb24").reformat(format="yuv420p")
    frame.pts = 0
    packets = [*ctx.encode(frame), *ctx.encode(None)]
    assert packets and sum(p.size for p in packets) > 0
    if not Path("/dev/nvidiactl").exists():  # no NVIDIA driver: NVENC cannot open, whatever FFmpeg lists
        assert name == "libx264"


def test_a_named_codec_is_taken_as_given():
    assert resolve_codec("libx265") == "libx265"


def test_an_unknown_encoder_is_one_invalid_option_line():
    with pytest.raises(InvalidOption) as caught:
        pick_pix_fmt("no_such_encoder", None, "yuv420p")
    assert "no_such_encoder" in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "codec, input_fmt, chosen",
    [("libx265", "yuv420p10le", "yuv420p10le"), ("ffv1", "yuv444p", "yuv444p"), ("libx264", "yuv420p", "yuv420p")],
)
def test_the_input_pixel_format_is_kept_where_the_codec_takes_it(codec, input_fmt, chosen):
    assert pick_pix_fmt(codec, None, input_fmt) == chosen


def test_a_pixel_format_the_codec_cannot_write_is_refused_with_what_it_takes():
    with pytest.raises(InvalidOption, match="cannot write pixel format rgb48le: it takes yuv420p"):
        pick_pix_fmt("libx264", "rgb48le", "yuv420p")


@pytest.mark.parametrize(
    "given, made",
    [
        ("", "log-level=error:info=0"),
        ("scenecut=0", "log-level=error:info=0:scenecut=0"),
        ("info=1:log-level=info", "info=1:log-level=info"),  # the user's word wins
    ],
)
def test_x265_params_keep_the_users_and_add_quiet_and_no_info_sei(given, made):
    from vsr_pipe.io.encoders import x265_params

    assert x265_params(given) == made


@pytest.mark.parametrize(
    "given, made",
    [
        ("", "log-level=error:info=0:b-adapt=0"),
        ("b-adapt=2", "log-level=error:info=0:b-adapt=2"),  # the user's word wins
    ],
)
def test_x265_params_fix_the_b_frames_where_keyframes_are_forced(given, made):
    """x265's trellis B-frame decision, given forced frame types (a chunk's keyframe), loses about
    1 dB at low rates on camera video; with fixed B-frames the forced keyframes cost what its own do."""
    from vsr_pipe.io.encoders import x265_params

    assert x265_params(given, forced_keyframes=True) == made


@pytest.mark.parametrize("forced", [True, False])
def test_an_x265_output_fixes_its_b_frames_only_where_the_caller_forces_keyframes(tmp_path, forced):
    from tests.media import make_clip
    from vsr_pipe.config import EncodeOptions, PipelineOptions
    from vsr_pipe.pipeline.run import run_to_file

    clip = make_clip(tmp_path / "in.mkv", width=64, height=48, frames=12, audio=False)
    # info=1: x265 writes its options into the stream, where the test reads them
    encode = EncodeOptions(codec="libx265", crf=30, codec_options=(("x265-params", "info=1"),))
    keyframes = clip.pts[::4] if forced else ()
    run_to_file(clip.path, tmp_path / "out.mkv", PipelineOptions(model="bicubic", encode=encode), keyframes=keyframes)
    with av.open(str(tmp_path / "out.mkv")) as out:
        stream = bytes(out.streams.video[0].codec_context.extradata or b"") + b"".join(
            bytes(p) for p in out.demux(video=0) if p.size
        )
    assert (b"b-adapt=0" in stream) == forced and (b"b-adapt=2" in stream) == (not forced)


def test_an_x265_hls_stream_does_not_carry_the_encoder_option_string_at_each_keyframe(tmp_path):
    """x265's info SEI (≈ 1.9 kB: version and every option) repeats with the headers at each keyframe
    in MPEG-TS: a small delivery LR with a keyframe per chunk paid it per chunk, doubling its bytes."""
    from tests.media import make_clip
    from vsr_pipe.config import EncodeOptions, PipelineOptions
    from vsr_pipe.pipeline.run import run_to_file

    clip = make_clip(tmp_path / "in.mkv", width=64, height=48, frames=12, audio=False)
    src, pts = clip.path, clip.pts
    encode = EncodeOptions(
        codec="libx265",
        crf=30,
        codec_options=(("g", "100"), ("x265-params", "scenecut=0")),  # keyframes where asked only, as a delivery LR
        muxer_options=(("hls_time", "0.001"), ("hls_playlist_type", "vod")),
    )
    run_to_file(src, tmp_path / "out.m3u8", PipelineOptions(model="bicubic", encode=encode), keyframes=pts[::4])
    with av.open(str(tmp_path / "out.m3u8")) as out:
        keys = [p.is_keyframe for p in out.demux(video=0) if p.size]
    assert keys == [i % 4 == 0 for i in range(12)]
    segments = sorted(tmp_path.glob("out*.ts"))
    assert len(segments) == 3 and not any(b"x265 (build" in s.read_bytes() for s in segments)


@pytest.mark.parametrize("suffix", [".m3u8", ".mkv", ".mp4"])
def test_an_x264_output_leaves_out_the_encoder_option_string_and_keeps_every_frame(tmp_path, suffix):
    """x264 writes its version and every option (≈ 0.7 kB) as an SEI in the first packet, with no
    switch to stop it: a 30 s delivery LR of 9 kB paid 7 % for it. The pictures, keyframes and
    timestamps stay as they were; with the user's own x264 options it stays (they may ask for SEIs)."""
    from tests.media import make_clip
    from vsr_pipe.config import EncodeOptions, PipelineOptions
    from vsr_pipe.pipeline.run import run_to_file

    clip = make_clip(tmp_path / "in.mkv", width=64, height=48, frames=12, audio=False)
    hls = (("hls_time", "0.001"), ("hls_playlist_type", "vod")) if suffix == ".m3u8" else ()

    def run(name, options=()):
        encode = EncodeOptions(codec="libx264", crf=30, codec_options=(("g", "100"), *options), muxer_options=hls)
        out = tmp_path / (name + suffix)
        run_to_file(clip.path, out, PipelineOptions(model="bicubic", encode=encode), keyframes=clip.pts[::4])
        with av.open(str(out)) as c:
            packets = [(p.pts, p.is_keyframe, bytes(p)) for p in c.demux(video=0) if p.size]
        with av.open(str(out)) as c:
            frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
        return packets, frames

    plain, frames = run("plain")
    kept, kept_frames = run("kept", (("x264-params", "scenecut=40"),))
    assert not any(b"x264 - core" in data for _, _, data in plain)
    assert any(b"x264 - core" in data for _, _, data in kept)
    assert [(pts, key) for pts, key, _ in plain] == [(pts, key) for pts, key, _ in kept]
    assert [key for _, key, _ in plain] == [i % 4 == 0 for i in range(12)]
    assert sum(len(d) for *_, d in kept) - sum(len(d) for *_, d in plain) > 500
    assert all(np.array_equal(a, b) for a, b in zip(frames, kept_frames)) and len(frames) == 12


def test_the_in_memory_byte_count_leaves_out_x264s_option_string_as_the_pipeline_does():
    from vsr_pipe.io import codec_roundtrip

    rng = np.random.default_rng(0)
    frames = codec_roundtrip.gray_frames([rng.integers(0, 255, (48, 64), dtype=np.uint8) for _ in range(4)])
    clip = codec_roundtrip.code_frames(frames, "libx264", 30)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = 64, 48, "yuv420p", Fraction(1, 25)
    enc.options = {"crf": "30", "preset": "medium"}
    packets = []
    for i, planes in enumerate(frames):
        frame = av.VideoFrame(64, 48, "yuv420p")
        for dst, src in zip(frame.planes, planes):
            np.frombuffer(dst, np.uint8).reshape(dst.height, dst.line_size)[:, : src.shape[1]] = src
        frame.pts = i
        packets += enc.encode(frame)
    packets += enc.encode(None)
    sei = codec_roundtrip._info_sei_bytes(bytes(packets[0]))
    assert 500 < sei < 1000 and clip.bytes == sum(p.size for p in packets) - sei
    assert codec_roundtrip._info_sei_bytes(b"\x00\x00\x00\x01\x65" + bytes(20)) == 0


def test_a_title_coded_in_hevc_starts_from_the_restorer_trained_on_hevc():
    """The codes modulate the restorer trained on the delivery codec's LR (x265 blurs where x264
    blocks), in a single package and on every rung of a ladder alike; a factor with no HEVC restorer
    (x3: trained on x265 alone it was no better) starts from the mixed one."""
    from dataclasses import replace

    from vsr_pipe.config import EncodeOptions
    from vsr_pipe.delivery.fit import FitSettings
    from vsr_pipe.delivery.ladder import LadderOptions
    from vsr_pipe.delivery.server import DeliverOptions
    from vsr_pipe.weights.shipped import codec_aware_name, shipped_sha

    hevc, avc = "espcn_y_x2_codec_hevc", "espcn_y_x2_codec"
    assert shipped_sha(hevc) and shipped_sha(avc) and shipped_sha(hevc) != shipped_sha(avc)
    assert [codec_aware_name(2, c) for c in ("libx265", "hevc_nvenc", "libx264", "h264_nvenc")] == [hevc, hevc, avc, avc]
    assert codec_aware_name(3, "libx265") == "espcn_y_x3_codec"

    def start(codec: str, factor: int = 2) -> str:
        encode = EncodeOptions(codec=codec)
        options = DeliverOptions(scale=1 / factor, down="bicubic", encode=encode, fit=FitSettings(train="auto"))
        return options.resolved().fit.start

    assert (start("libx265"), start("libx264"), start("libx265", 3)) == (hevc, avc, "espcn_y_x3_codec")
    ladder = LadderOptions(codec="libx265")
    assert (ladder.for_package(2, 38).fit.start, ladder.for_package(3, 38).fit.start) == (hevc, "espcn_y_x3_codec")
    assert replace(ladder, codec="libx264").for_package(2, 38).fit.start == avc
