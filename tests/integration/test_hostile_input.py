"""What a user's files carry survives, and damaged files are named as such: stream languages and
flags, an MPEG-TS colour range, a cut file's missing duration, and every input the fuzz campaign
(``tests/fuzz/campaign.py``) found a failure with, kept under ``tests/regressions/``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import pytest

from tests.conftest import ROOT, run_cli
from tests.media import make_clip, make_truncated_copy

# Real subprocesses and media per case: run by .ci/run (make test-slow), not in the fast default.
pytestmark = pytest.mark.slow

REGRESSIONS = sorted((ROOT / "tests" / "regressions").glob("*.*"))
D = av.stream.Disposition


def with_languages(src: Path, dst: Path) -> Path:
    """``src`` (video, one audio, one subtitle stream) remuxed with an ``eng`` default audio, a ``fra``
    commentary audio (its copy) and ``deu`` forced subtitles."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        audio, subs = inp.streams.audio[0], inp.streams.subtitles[0]
        streams[audio.index].metadata["language"] = "eng"
        streams[audio.index].disposition = D.default
        streams[subs.index].metadata["language"] = "deu"
        streams[subs.index].disposition = D.forced
        second = out.add_stream_from_template(audio)
        second.metadata.update({"language": "fra", "title": "Commentaire"})
        second.disposition = D.comment
        for packet in inp.demux():
            if packet.dts is None:
                continue
            if packet.stream is audio:
                twin = av.Packet(bytes(packet))
                twin.pts, twin.dts, twin.duration, twin.time_base = (
                    packet.pts,
                    packet.dts,
                    packet.duration,
                    packet.time_base,
                )
                twin.stream = second
                out.mux(twin)
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def stream_facts(path: Path) -> list[tuple[str, str | None, str | None, int]]:
    with av.open(str(path)) as c:
        return [
            (s.type, s.metadata.get("language"), s.metadata.get("title"), int(s.disposition))
            for s in c.streams
            if s.type in ("audio", "subtitle")
        ]


def test_languages_titles_and_flags_of_audio_and_subtitles_are_kept(clip, tmp_path):
    src = clip("plain.mkv", width=96, height=64, frames=12, audio=True, subtitles=True)
    tagged = with_languages(src.path, tmp_path / "tagged.mkv")
    out = tmp_path / "out.mkv"
    r = run_cli(tagged, "--model", "bicubic", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert stream_facts(out) == [
        ("audio", "eng", None, int(D.default)),
        ("subtitle", "deu", None, int(D.forced)),
        ("audio", "fra", "Commentaire", int(D.comment)),
    ]


def test_audio_languages_survive_into_mp4_too(clip, tmp_path):
    src = clip("plain.mkv", width=96, height=64, frames=12, audio=True, subtitles=True)
    tagged = with_languages(src.path, tmp_path / "tagged.mkv")
    out = tmp_path / "out.mp4"
    r = run_cli(tagged, "--model", "bicubic", "-o", out, "-q")
    assert r.returncode == 0, r.stderr  # SubRip cannot go into MP4: a warning, the audio is kept
    audio = [(lang, disp) for kind, lang, _, disp in stream_facts(out) if kind == "audio"]
    assert audio == [("eng", int(D.default)), ("fra", int(D.comment))]


def remux(src: Path, dst: Path) -> Path:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        video = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
    return dst


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
@pytest.mark.parametrize("via", ["file", "pipe"])
def test_mpegts_colour_range_is_carried(tmp_path, pix_fmt, via):
    src = make_clip(tmp_path / "full.mkv", width=96, height=64, frames=12, audio=False, crf=20,
                    color_range="full", colorspace="bt601", pix_fmt=pix_fmt)  # fmt: skip
    ts = remux(src.path, tmp_path / "full.ts")
    out = tmp_path / "out.mkv"
    if via == "file":
        r = run_cli(ts, "--model", "bicubic", "-o", out, "-q")
    else:
        with open(ts, "rb") as stdin:
            r = run_cli("-", "--model", "bicubic", "-o", out, "-q", stdin=stdin)
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert (int(frame.color_range), int(frame.colorspace)) == (2, 6)


def test_a_cut_file_says_how_much_of_its_duration_was_found(clip, tmp_path):
    src = clip("whole.mkv", width=96, height=64, frames=48, audio=True)  # 2 s at 24 fps
    cut = make_truncated_copy(src.path, tmp_path / "cut.mkv", fraction=0.5)
    r = run_cli(cut, "--model", "bicubic", "-o", tmp_path / "out.mkv", "-q")
    assert r.returncode == 0, r.stderr
    assert "ends early" in r.stderr and "of its declared 2.00 s" in r.stderr, r.stderr
    whole = run_cli(src.path, "--model", "bicubic", "-o", tmp_path / "whole_out.mkv", "-q")
    assert whole.returncode == 0 and "ends early" not in whole.stderr, whole.stderr


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_fuzz_regressions_end_cleanly(tmp_path, path):
    """Each input once failed the fuzz campaign; each must now exit 0 with a decodable output, or
    1/2 with short vsr-pipe lines, and leave no partial file."""
    suffix = ".mkv" if path.suffix in (".ts", ".webm") else path.suffix
    out = tmp_path / f"out{suffix}"
    r = subprocess.run(
        [sys.executable, "-m", "vsr_pipe", str(path), "-o", str(out), "--model", "bicubic", "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in r.stderr
    assert not list(tmp_path.glob(".*.partial-*"))
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    # a line per kind of damage found (a stream not copied, a short file, frames concealed), never a flood
    assert all(line.startswith("vsr-pipe:") for line in lines) and len(lines) <= 6, r.stderr
    if "not-utf8" not in path.name:  # each of these now makes a file; the garbled-tags one has no decodable frame
        assert r.returncode == 0, r.stderr
    if r.returncode == 0:
        with av.open(str(out)) as c:
            assert sum(1 for _ in c.decode(video=0)) > 0
    else:
        assert r.returncode in (1, 2) and "no video frame could be decoded" in r.stderr, (r.returncode, r.stderr)
