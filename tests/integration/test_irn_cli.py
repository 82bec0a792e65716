"""The invertible rescaler as a user runs it: a learned downscale that tags itself, and its inverse."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.media import frame_planes, read_frames


def probe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        meta = {k.lower(): val for k, val in c.metadata.items()}
        audio = sum(1 for p in c.demux(audio=0) if p.size) if c.streams.audio else 0
        return (v.codec_context.width, v.codec_context.height), meta, audio


def luma(path) -> np.ndarray:
    return np.stack([frame_planes(f)[0].astype(np.float64) for f in read_frames(path)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a - b) ** 2)))


@pytest.mark.slow  # over 5 s: run by .ci/run, not by the fast default
def test_downscale_tags_the_file_and_the_restore_needs_no_flag(clip, tmp_path):
    src = clip("in.mp4", width=96, height=64, frames=12)
    lr, back = tmp_path / "lr.mp4", tmp_path / "back.mp4"
    r = run_cli(src.path, "--model", "irn", "--scale", "0.5", "-o", lr, "-q")
    assert r.returncode == 0, r.stderr
    size, meta, audio = probe(lr)
    assert size == (48, 32) and audio > 0
    assert "model=irn_y" in meta["vsr_pipe_rescale"] and "hr=96x64" in meta["vsr_pipe_rescale"]
    assert "factor=2x2" in meta["vsr_pipe_rescale"]
    assert len(read_frames(lr)) == 12

    r = run_cli(lr, "-o", back, "--json")
    assert r.returncode == 0, r.stderr
    assert "note" not in r.stderr
    assert '"irn (irn up 2x2)"' in r.stdout
    size, meta, audio = probe(back)
    assert size == (96, 64) and audio > 0
    assert "vsr_pipe_rescale" not in meta  # the restored file is not a downscale any more
    assert len(read_frames(back)) == 12


@pytest.mark.slow  # over 5 s: run by .ci/run, not by the fast default
def test_asymmetric_odd_sized_downscale_in_matroska(clip, tmp_path):
    src = clip("in.mkv", width=91, height=67, frames=4, pix_fmt="yuv444p", codec="ffv1")
    lr = tmp_path / "lr.mkv"
    r = run_cli(src.path, "--model", "irn", "--scale", "0.5x0.75", "--engine", "torch", "-o", lr, "-q")
    assert r.returncode == 0, r.stderr
    size, meta, _ = probe(lr)
    assert size == (46, 50)
    assert "hr=91x67;lr=46x50" in meta["vsr_pipe_rescale"]
    back = tmp_path / "back.mkv"
    assert run_cli(lr, "-o", back, "-q").returncode == 0
    assert probe(back)[0] == (91, 67)


def test_untagged_video_is_restored_with_the_factor_said_on_stderr(clip, tmp_path):
    src = clip("small.mp4", width=48, height=32, frames=3, audio=False)
    r = run_cli(src.path, "--model", "irn", "--scale", "2", "-o", tmp_path / "o.mp4", "-q")
    assert r.returncode == 0, r.stderr
    assert "no rescaling tag" in r.stderr and "2x2" in r.stderr
    assert probe(tmp_path / "o.mp4")[0] == (96, 64)


IRN_OPTION_ERRORS = (
    (("--model", "irn", "--scale", "0.2"), "out of range"),
    (("--model", "irn", "--scale", "0.5x2"), "same way"),
    (("--model", "irn", "--scale", "5"), "out of range"),
    (("--scale", "0.5"), "--model irn"),
    (("--scale", "2", "--refine", "5"), "--refine"),
    (("--model", "bicubic", "--scale", "2", "--refine", "5"), "--refine"),
    (("--model", "irn", "--scale", "2", "--refine", "5"), "downscale"),
    (("--model", "irn", "--scale", "0.5", "--refine", "5", "--engine", "onnxruntime"), "torch engine"),
)


def test_irn_factor_errors_are_one_line(clip, tmp_path):
    """In-process (a process each took 1.2 s); the subprocess below pins what a shell sees."""
    from click.testing import CliRunner

    from vsr_pipe.cli import main

    src = clip("in.mp4", width=64, height=48, frames=2, audio=False)
    for args, words in IRN_OPTION_ERRORS:
        r = CliRunner().invoke(main, [str(src.path), *args, "-o", str(tmp_path / "o.mp4")])
        assert r.exit_code == 1, (args, r.output)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_an_irn_factor_error_is_one_line_on_stderr_and_exit_1(clip, tmp_path):
    src = clip("in.mp4", width=64, height=48, frames=2, audio=False)
    r = run_cli(src.path, "--model", "irn", "--scale", "0.5x2", "-o", tmp_path / "o.mp4")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith("vsr-pipe: error: ") and r.stderr.count("\n") == 1 and "same way" in r.stderr
    assert not (tmp_path / "o.mp4").exists()


def real_clip(path, frames: int = 3, box=(224, 96, 192, 128)):
    """A lossless crop (x, y, w, h) of the bundled sample: real texture, unlike the synthetic bars."""
    from tests.conftest import SAMPLE

    x, y, w, h = box
    with av.open(str(SAMPLE)) as src, av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            planes = [p[y // s : (y + h) // s, x // s : (x + w) // s] for p, s in zip(frame_planes(frame), (1, 2, 2))]
            new = av.VideoFrame(w, h, "yuv420p")
            for plane, data in zip(new.planes, planes):
                buf = np.zeros((plane.height, plane.line_size), np.uint8)
                buf[:, : data.shape[1]] = data
                plane.update(buf)
            new.pts = i
            for packet in stream.encode(new):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def restorations(tmp_path_factory):
    """Y-PSNR against a real crop of: irn down + irn up; bicubic down + ESPCN up; bicubic down + up."""
    tmp = tmp_path_factory.mktemp("restore")
    src = real_clip(tmp / "in.mkv")
    lossless = ("--codec", "ffv1", "-q")
    assert run_cli(src, "--model", "irn", "--scale", "0.5", "-o", tmp / "lr.mkv", *lossless).returncode == 0
    assert run_cli(tmp / "lr.mkv", "-o", tmp / "irn.mkv", *lossless).returncode == 0
    assert run_cli(src, "--model", "bicubic", "--size", "96x64", "-o", tmp / "bic.mkv", *lossless).returncode == 0
    for model in ("espcn", "bicubic"):
        args = ("--model", model, "--scale", "2", "-o", tmp / f"{model}_up.mkv", *lossless)
        assert run_cli(tmp / "bic.mkv", *args).returncode == 0
    ref = luma(src)
    scores = {name: psnr(luma(tmp / f"{name}.mkv"), ref) for name in ("irn", "espcn_up", "bicubic_up")}
    return {**scores, "folder": tmp}


@pytest.mark.slow  # five CLI runs make the restorations
def test_restoring_the_learned_downscale_is_a_real_rescaler(restorations):
    """From its own lossless LR it restores far above plain bicubic and on a par with ESPCN on a bicubic LR
    (today 33.39 against 31.79 and 33.56 dB)."""
    r = restorations
    assert r["irn"] > r["bicubic_up"] + 1.0, r
    assert r["irn"] > r["espcn_up"] - 0.5, r


@pytest.mark.slow  # refinement is a backward pass per step: 8 steps on 3 crops take ~10 s here
def test_refining_the_learned_downscale_lifts_it_above_bicubic_down_espcn_up(restorations):
    """The server-side refinement (README) lifts the restoration above bicubic + ESPCN (today +0.41 dB
    over unrefined, +0.24 over ESPCN). Issue #3's bar, +3 dB over bicubic + ESPCN unrefined, is not met:
    the README says so and by how much ("The bars are not met")."""
    r, tmp = restorations, restorations["folder"]
    lossless = ("--codec", "ffv1", "-q")
    run = run_cli(tmp / "in.mkv", "--model", "irn", "--scale", "0.5", "--refine", "8", "-o", tmp / "lr_refined.mkv",
                  *lossless, "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "refined in 8 steps" in run.stdout
    assert "model=irn_y" in probe(tmp / "lr_refined.mkv")[1]["vsr_pipe_rescale"]  # the same inverse restores it
    assert run_cli(tmp / "lr_refined.mkv", "-o", tmp / "irn_refined.mkv", *lossless).returncode == 0
    refined = psnr(luma(tmp / "irn_refined.mkv"), luma(tmp / "in.mkv"))
    assert refined > r["irn"] + 0.2, (refined, r)
    assert refined > r["espcn_up"] + 0.1, (refined, r)


@pytest.mark.slow  # over 5 s: run by .ci/run, not by the fast default
def test_eval_video_scores_each_frame_and_charts_them(clip, tmp_path):
    import json

    from PIL import Image

    from vsr_pipe.quality.plots import plot_series
    from vsr_pipe.quality.video import compare_videos

    src = clip("in.mp4", width=96, height=64, frames=8)
    lr, back = tmp_path / "lr.mp4", tmp_path / "back.mkv"
    assert run_cli(src.path, "--model", "irn", "--scale", "0.5", "-o", lr, "-q").returncode == 0
    assert run_cli(lr, "--codec", "ffv1", "-o", back, "-q").returncode == 0
    chart = tmp_path / "psnr.png"
    r = run_cli("eval", "video", src.path, back, "--json", "--plot", chart)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert len(report["psnr"]) == 8 and 20 < report["mean_psnr"] < 80
    assert Image.open(chart).size == (900, 320)

    # Two videos on one chart, each in its own colour.
    scores = compare_videos(str(src.path), str(back), with_ssim=False)
    same = compare_videos(str(src.path), str(src.path), with_ssim=False)
    assert scores.mean_psnr < same.mean_psnr
    plot_series({"restored": scores, "worse": scores.__class__(tuple(p - 3 for p in scores.psnr), ())}, chart)
    colours = {c for _, c in Image.open(chart).convert("RGB").getcolors(1 << 16)}
    assert (200, 40, 40) in colours and (40, 90, 200) in colours
