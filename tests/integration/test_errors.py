"""Bad input gets one clear line and a non-zero exit, never a traceback, and nothing is lost."""

from __future__ import annotations

import json
import os
import shutil

import av
import pytest

from tests.conftest import run_cli
from tests.media import make_corrupt_copy, make_damaged_slices_copy, make_truncated_copy


def assert_one_line_error(result, *fragments, code=None):
    assert result.returncode != 0
    if code is not None:
        assert result.returncode == code
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_input(tmp_path):
    r = run_cli(tmp_path / "nope.mp4", "-o", tmp_path / "out.mp4")
    assert_one_line_error(r, "input not found", "nope.mp4")


def test_not_a_video(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    r = run_cli(text, "-o", tmp_path / "out.mp4")
    assert_one_line_error(r, "not a video")


def test_no_video_stream(tmp_path):
    audio_only = tmp_path / "song.m4a"
    with av.open(str(audio_only), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        import numpy as np

        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48000
        for i in range(10):
            frame.pts = i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    r = run_cli(audio_only, "-o", tmp_path / "out.mp4")
    assert_one_line_error(r, "no video stream")


@pytest.mark.parametrize("scale", ["9", "0.5", "abc"])
def test_scale_out_of_range_or_malformed(clip, tmp_path, scale):
    src = clip("in.mp4", frames=2, audio=False)
    r = run_cli(src.path, "--scale", scale, "-o", tmp_path / "out.mp4")
    assert_one_line_error(r, "scale")
    assert "1 to 8" in r.stderr or "not a number" in r.stderr


@pytest.mark.parametrize("codec, crf, allowed", [("libx264", "99", "0 to 51"), ("libx265", "-1", "0 to 51"),
                                                  ("libvpx-vp9", "64", "0 to 63")])  # fmt: skip
def test_crf_out_of_range_names_the_codecs_range(clip, tmp_path, codec, crf, allowed):
    src = clip("in.mp4", frames=2, audio=False)
    r = run_cli(src.path, "--codec", codec, "--crf", crf, "-o", tmp_path / "out.mkv")
    assert_one_line_error(r, f"crf {crf}", codec, allowed)
    assert r.returncode == 1 and not (tmp_path / "out.mkv").exists()


def test_a_size_that_shrinks_is_refused_as_a_scale_below_1_is(clip, tmp_path):
    src = clip("in.mp4", frames=2, audio=False)
    r = run_cli(src.path, "--size", "100x100", "-o", tmp_path / "out.mp4")
    assert_one_line_error(r, "size 100x100 from 160x96", "1 to 8", "--model irn or bicubic")
    assert not (tmp_path / "out.mp4").exists()


def test_output_equal_to_input_is_refused_and_input_untouched(clip):
    src = clip("in.mp4", frames=2, audio=False)
    before = src.path.read_bytes()
    r = run_cli(src.path, "-o", src.path)
    assert_one_line_error(r, "is the input")
    assert src.path.read_bytes() == before


def test_unwritable_or_missing_output_folder(clip, tmp_path):
    src = clip("in.mp4", frames=2, audio=False)
    r = run_cli(src.path, "-o", tmp_path / "missing" / "out.mp4")
    assert_one_line_error(r, "output folder does not exist")
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions
            pytest.skip("running as root: permissions are not enforced")
        r = run_cli(src.path, "-o", locked / "out.mp4")
        assert_one_line_error(r, "not writable")
    finally:
        os.chmod(locked, 0o700)


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_unknown_codec_and_bad_pixel_format(clip, tmp_path):
    src = clip("in.mp4", frames=2, audio=False)
    r = run_cli(src.path, "--codec", "nosuchcodec", "-o", tmp_path / "out.mp4")
    assert_one_line_error(r, "nosuchcodec")
    r = run_cli(src.path, "--pix-fmt", "rgb24", "-o", tmp_path / "out.mp4")
    assert_one_line_error(r, "rgb24")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
@pytest.mark.parametrize("codec, software", [("h264_nvenc", "libx264"), ("hevc_qsv", "libx265")])
def test_a_hardware_encoder_without_its_device_is_one_line_naming_what_opens(clip, tmp_path, codec, software):
    from vsr_pipe.io.encoders import encoder_opens

    if encoder_opens(codec):
        pytest.skip(f"{codec} opens on this machine")
    src = clip("in.mp4", frames=2, audio=False)
    r = run_cli(src.path, "--codec", codec, "-o", tmp_path / "out.mp4")
    assert_one_line_error(r, codec, "does not open on this machine", software, code=1)
    assert "internal error" not in r.stderr and not (tmp_path / "out.mp4").exists()


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_corrupt_input_decodes_what_it_can_and_says_how_many_packets_were_bad(clip, tmp_path):
    src = clip("good.mkv", frames=48, audio=False, gop_size=6)
    bad = make_corrupt_copy(src.path, tmp_path / "bad.mkv")
    out = tmp_path / "out.mkv"
    r = run_cli(bad, "--model", "bicubic", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert "damaged packet" in r.stderr and "Traceback" not in r.stderr
    with av.open(str(out)) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert 0 < n < 48


def test_damage_the_decoder_conceals_is_counted_in_json_and_noted(clip, tmp_path):
    src = clip("good.mp4", frames=24, audio=False)
    damaged = make_damaged_slices_copy(src.path, tmp_path / "damaged.mp4", packets=2)
    r = run_cli(damaged, "--model", "bicubic", "-o", tmp_path / "out.mp4", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["frames"] == 24 and summary["bad_packets"] == 0  # every packet taken: nothing refused
    assert summary["corrupt_frames"] > 0
    assert f"{summary['corrupt_frames']} frames were decoded with errors (concealed by the decoder)" in r.stderr


def test_truncated_input_keeps_the_frames_before_the_cut(clip, tmp_path):
    src = clip("whole.mkv", frames=48, audio=True)
    cut = make_truncated_copy(src.path, tmp_path / "cut.mkv", fraction=0.5)
    out = tmp_path / "out.mkv"
    r = run_cli(cut, "--model", "bicubic", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert "the input ends early" in r.stderr and "of its declared 2.00 s were found" in r.stderr, r.stderr
    with av.open(str(out)) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert 5 < n < 48


def test_truncated_mp4_without_index_is_one_line(clip, tmp_path):
    src = clip("whole.mp4", frames=24)
    cut = make_truncated_copy(src.path, tmp_path / "cut.mp4", fraction=0.5)
    r = run_cli(cut, "-o", tmp_path / "out.mp4")
    assert_one_line_error(r, "cut.mp4")


def test_malformed_weights_file_is_one_line(tmp_path):
    from vsr_pipe.errors import WeightsError
    from vsr_pipe.weights.store import load_model, shipped_path

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        load_model(junk)
    wrong = tmp_path / "wrong.safetensors"
    shutil.copy(shipped_path("espcn_y_x2"), wrong)
    from safetensors.torch import load_file, save_file

    state = load_file(str(wrong))
    state["conv_first.weight"] = state["conv_first.weight"][:10]
    save_file(state, str(wrong), metadata={"architecture": "espcn", "scale": "2"})
    with pytest.raises(WeightsError, match="does not fit"):
        load_model(wrong)
    r = run_cli("eval", "images", tmp_path, "--scale", "2", "--weights", junk)
    assert_one_line_error(r)


@pytest.mark.parametrize(
    "args, words",
    [
        (("--chunk", "abc"), "--chunk"),
        (("--no-such-option",), "no-such-option"),
        (("--precision", "fp64"), "--precision"),
    ],
)
def test_malformed_options_are_one_line_too(clip, tmp_path, args, words):
    result = run_cli(clip("in.mp4", frames=2, audio=False).path, *args, "-o", tmp_path / "o.mp4")
    assert_one_line_error(result, words, code=2)
    assert not (tmp_path / "o.mp4").exists()


def test_train_option_out_of_range_is_one_line(tmp_path):
    assert_one_line_error(run_cli("train", "--model", "irn", "--codec-share", "2"), "--codec-share", code=2)
