"""deliver --ladder: candidates coded directly and as packages, the rungs on the hull, an HLS master
playlist over them; restore --rung / --bandwidth plays one rung."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import run_cli
from vsr_pipe.delivery.fit import FitSettings
from vsr_pipe.delivery.ladder import (
    LADDER,
    MASTER_PLAYLIST,
    Candidate,
    LadderOptions,
    build_ladder,
    choose_rungs,
    direct_psnr_at,
    parse_bandwidth,
    read_ladder,
    restore_rung,
)
from vsr_pipe.delivery.package import MANIFEST, MAX_MANIFEST_BYTES, PackageError, expanded, load_manifest
from vsr_pipe.errors import InvalidOption, OutputError
from vsr_pipe.quality.rd import RdPoint

WIDTH, HEIGHT, FRAMES = 96, 64, 24  # x2 fits (48x32); x3 does not (64 is not divisible by 6): skipped
# Direct coding only at a high rate, so the cheapest candidates are packages and one is a rung.
LADDER_ARGS = ("--direct-crfs", "18", "--lr-crfs", "33,48", "--budget", "2", "--features", "4", "--blocks", "1",
               "--max-seconds", "0.5", "--threads", "1")  # fmt: skip


def textured_clip(path: Path, width: int = WIDTH, height: int = HEIGHT, frames: int = FRAMES, cut: int = 10) -> Path:
    """A lossless clip of fine texture panning with grain, 24 fps: costly to code at full size, so
    an LR package can undercut direct coding in bytes; a scene cut (another texture, darker) at
    frame ``cut``, off the 0.5 s chunk grid."""
    rng = np.random.default_rng(0)
    shape = (height + frames, width + 2 * frames)
    fields = [rng.integers(0, 256, shape).astype(np.float32) for _ in range(2)]
    fields[1] = fields[1] * 0.5
    fields = [(f + np.roll(f, 1, 0) + np.roll(f, 1, 1)) / 3 for f in fields]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            field = fields[int(i >= cut)]
            y = field[i : i + height, 2 * i : 2 * i + width] + rng.normal(0, 6, (height, width))
            frame = av.VideoFrame(width, height, "yuv420p")
            planes = [np.clip(y, 0, 255).astype(np.uint8), *(np.full((height // 2, width // 2), 128, np.uint8),) * 2]
            for dst, p in zip(frame.planes, planes):
                np.frombuffer(dst, np.uint8).reshape(dst.height, dst.line_size)[:, : p.shape[1]] = p
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def master(tmp_path_factory) -> Path:
    return textured_clip(tmp_path_factory.mktemp("master") / "master.mp4")


@pytest.fixture(scope="module")
def title(master, tmp_path_factory):
    """The ladder the CLI writes, its --json summary and its stderr."""
    folder = tmp_path_factory.mktemp("ladder") / "title"
    proc = run_cli("deliver", master, "--ladder", "-o", folder, *LADDER_ARGS, "--json")
    assert proc.returncode == 0, proc.stderr
    return folder, json.loads(proc.stdout), proc.stderr


def variants(text: str) -> list[tuple[dict, str]]:
    """(attributes, URI) of each variant of an HLS master playlist."""
    lines = [line for line in text.splitlines() if line]
    out = []
    for line, uri in zip(lines, lines[1:]):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(kv.split("=") for kv in line.split(":", 1)[1].split(","))
            out.append((attrs, uri))
    return out


def decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def video_packet_bytes(playlist: Path) -> int:
    with av.open(str(playlist)) as c:
        return sum(p.size for p in c.demux(c.streams.video[0]) if p.size)


@pytest.mark.slow
def test_ladder_writes_a_master_playlist_whose_variants_are_the_rungs_by_bandwidth(title):
    folder, summary, stderr = title
    doc = json.loads((folder / LADDER).read_text())
    text = (folder / MASTER_PLAYLIST).read_text()
    assert text.splitlines()[:2] == ["#EXTM3U", "#EXT-X-VERSION:3"]
    found = variants(text)
    rungs = doc["rungs"]
    assert [uri for _, uri in found] == [f"{r['folder']}/{r['playlist']}" for r in rungs]
    assert [int(a["BANDWIDTH"]) for a, _ in found] == [r["bandwidth"] for r in rungs]
    assert [int(a["AVERAGE-BANDWIDTH"]) for a, _ in found] == [r["average_bandwidth"] for r in rungs]
    assert [a["RESOLUTION"] for a, _ in found] == [f"{r['size'][0]}x{r['size'][1]}" for r in rungs]
    assert all(re.fullmatch(r'"avc1\.64[0-9a-f]{4}"', a["CODECS"]) for a, _ in found)  # x264 medium: High
    assert [r["bandwidth"] for r in rungs] == sorted(r["bandwidth"] for r in rungs)
    assert summary["rungs"] == rungs and len(doc["candidates"]) == 3  # x3 skipped: 64 is not divisible by 6
    assert any(s.startswith("x3") for s in doc["skipped"])
    assert {"direct", "package"} == {r["kind"] for r in rungs}
    # Only the rungs are left in the folder; the candidates not kept are gone.
    assert sorted(p.name for p in folder.iterdir()) == sorted([LADDER, MASTER_PLAYLIST, *(r["folder"] for r in rungs)])
    assert "[1/3] direct_crf18" in stderr and "[3/3] x2_crf48" in stderr


@pytest.mark.slow
def test_every_rungs_segments_start_at_the_same_frames(title):
    """A player switches rungs at segment boundaries: the direct rungs are cut where the packages'
    chunks start, each segment starting with a keyframe."""
    folder, _, _ = title
    starts = {}
    for rung in read_ladder(str(folder)).rungs:
        with av.open(str(folder / rung.folder / rung.playlist)) as c:
            packets = [p for p in c.demux(video=0) if p.size]
        keys = [p.pts * p.time_base for p in packets if p.is_keyframe]
        segments = _media_segment_count(folder / rung.folder / rung.playlist)
        assert len(keys) == segments, rung.name  # no keyframe inside a segment
        starts[rung.name] = keys
    assert len(set(map(tuple, starts.values()))) == 1 and len(next(iter(starts.values()))) > 1, starts


def _media_segment_count(playlist: Path) -> int:
    return sum(1 for line in playlist.read_text().splitlines() if line and not line.startswith("#"))


@pytest.mark.slow
def test_every_rung_plays_to_its_last_frame(title):
    folder, _, _ = title
    for rung in read_ladder(str(folder)).rungs:
        frames = decoded(folder / rung.folder / rung.playlist)
        assert len(frames) == FRAMES, rung.name
        assert (frames[-1].width, frames[-1].height) == rung.size
        assert rung.size == ((WIDTH, HEIGHT) if rung.kind == "direct" else (WIDTH // 2, HEIGHT // 2))


@pytest.mark.slow
def test_rungs_are_on_the_hull_and_bytes_are_what_a_client_fetches(title):
    folder, _, _ = title
    ladder = read_ladder(str(folder))
    for rung in ladder.rungs:
        better = [c for c in ladder.candidates if c.name != rung.name and c.bytes <= rung.bytes and c.psnr > rung.psnr]
        assert not better, f"{rung.name} is dominated by {better}"
        home = folder / rung.folder
        video = video_packet_bytes(home / rung.playlist)  # packets only: no container, no playlist
        if rung.kind == "direct":
            assert rung.bytes == video and rung.weights_bytes == 0 and rung.generic_psnr is None
        else:
            manifest = expanded(load_manifest((home / MANIFEST).read_bytes(), MAX_MANIFEST_BYTES))
            entries = [e for e in [manifest.get("title"), *manifest["chunks"]] if e and e.get("file")]
            weights = sum({e["file"]: e["size"] for e in entries}.values())  # files that ship, each once
            assert rung.weights_bytes == weights + (home / MANIFEST).stat().st_size
            assert rung.bytes == video + rung.weights_bytes
            report = json.loads((home / "report.json").read_text())["quality"]
            assert rung.generic_psnr == report["generic_psnr"]  # its LR with the generic model alone
        assert rung.average_bandwidth == pytest.approx(rung.bytes * 8 / rung.duration_s, abs=1)
        assert rung.bandwidth >= rung.average_bandwidth - 1
    assert all(c.why for c in ladder.candidates)


@pytest.mark.slow
def test_restore_rung_of_a_package_gives_master_size_frames(title, tmp_path):
    folder, _, _ = title
    ladder = read_ladder(str(folder))
    k = next(k for k, r in enumerate(ladder.rungs) if r.kind == "package")
    out = tmp_path / "restored.mkv"
    proc = run_cli("restore", folder, "--rung", k, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    frames = decoded(out)
    assert len(frames) == FRAMES and (frames[0].width, frames[0].height) == (WIDTH, HEIGHT)


@pytest.mark.slow
def test_restore_rung_of_a_direct_rung_gives_the_masters_frames(title, tmp_path):
    folder, _, _ = title
    ladder = read_ladder(str(folder))
    rung = next(r for r in ladder.rungs if r.kind == "direct")
    summary = restore_rung(ladder, rung, str(tmp_path / "direct.mp4"))
    frames = decoded(tmp_path / "direct.mp4")
    assert summary.frames == len(frames) == FRAMES and (frames[0].width, frames[0].height) == (WIDTH, HEIGHT)


@pytest.mark.slow
def test_bandwidth_picks_the_best_rung_that_fits_else_the_lowest(title, tmp_path):
    from vsr_pipe.delivery.ladder import choose_rung

    folder, _, _ = title
    ladder = read_ladder(str(folder))
    top = max(r.bandwidth for r in ladder.rungs)
    assert choose_rung(ladder, bandwidth=top)[0] == max(ladder.rungs, key=lambda r: r.psnr)
    for r in ladder.rungs:
        chosen, note = choose_rung(ladder, bandwidth=r.bandwidth)
        fits = [x for x in ladder.rungs if x.bandwidth <= r.bandwidth]
        assert chosen == max(fits, key=lambda x: x.psnr) and note is None
    assert choose_rung(ladder)[0] == max(ladder.rungs, key=lambda r: r.psnr)
    out = tmp_path / "low.mkv"
    proc = run_cli("restore", folder, "--bandwidth", "1k", "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    assert "no rung fits 1000 bits/s: playing the lowest, 0" in proc.stderr
    assert len(decoded(out)) == FRAMES


@pytest.mark.slow
def test_a_tampered_ladder_json_is_one_line(title, tmp_path):
    folder, _, _ = title
    copy = tmp_path / "title"
    shutil.copytree(folder, copy)
    doc = json.loads((copy / LADDER).read_text())
    doc["rungs"][0]["folder"] = "../" + doc["rungs"][0]["folder"]
    (copy / LADDER).write_text(json.dumps(doc))
    proc = run_cli("restore", copy, "--rung", "0", "-o", tmp_path / "out.mkv")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vsr-pipe: error:") and "not a plain file name" in lines[0]
    with pytest.raises(PackageError):
        read_ladder(str(copy))
    assert not (tmp_path / "out.mkv").exists()


@pytest.mark.slow
def test_a_ladder_replaces_a_ladder_and_refuses_anything_else(master, tmp_path):
    options = LadderOptions(direct_crfs=(43,), factors=(), max_seconds=0.5)
    first = build_ladder(str(master), str(tmp_path / "t"), options)
    again = build_ladder(
        str(master), str(tmp_path / "t"), LadderOptions(direct_crfs=(48,), factors=(), max_seconds=0.5)
    )
    assert [r.folder for r in first.rungs] == ["rung_0_direct_crf43"]
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [LADDER, MASTER_PLAYLIST, "rung_0_direct_crf48"]
    assert [r.name for r in again.rungs] == ["direct_crf48"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(OutputError):
        build_ladder(str(master), str(other), options)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def candidate(name: str, kind: str, nbytes: int, psnr: float, bandwidth: int | None = None) -> Candidate:
    rate = bandwidth or nbytes * 8
    return Candidate(name, kind, 1 if kind == "direct" else 2, 30.0, nbytes, 0, psnr, 1.0, rate, rate, (96, 64))


def test_a_package_under_direct_coding_at_its_bytes_is_no_rung():
    direct = [RdPoint(1000, 30.0, "d1"), RdPoint(4000, 36.0, "d2")]
    assert direct_psnr_at(direct, 2000) == pytest.approx(33.0)  # half-way in log(bytes)
    assert direct_psnr_at(direct, 500) is None  # below the range: the nearest has more bytes
    assert direct_psnr_at(direct, 8000) == 36.0  # above it: the nearest has fewer bytes and more dB
    made = [
        candidate("d1", "direct", 1000, 30.0),
        candidate("d2", "direct", 4000, 36.0),
        candidate("cheap", "package", 500, 25.0),  # cheapest: on the hull, nothing direct to compare
        candidate("under", "package", 2000, 32.9),  # on the hull (above the chord), under direct's log curve
        candidate("over", "package", 3000, 35.6),  # on the hull and above direct's curve at 3000 bytes
        candidate("dominated", "package", 4500, 35.0),
    ]
    candidates, rungs = choose_rungs(made)
    assert [r.name for r in rungs] == ["cheap", "d1", "over", "d2"]
    assert [r.folder for r in rungs] == ["rung_0_cheap", "rung_1_d1", "rung_2_over", "rung_3_d2"]
    why = {c.name: c.why for c in candidates if not c.kept}
    assert why["under"].startswith("below direct coding") and why["dominated"].startswith("under the convex hull")


def test_bandwidth_parses_rates_and_refuses_nonsense():
    assert parse_bandwidth("300k") == 300_000 and parse_bandwidth("1.5M") == 1_500_000 and parse_bandwidth("800") == 800
    for bad in ("fast", "-1k", "0", "k"):
        with pytest.raises(InvalidOption):
            parse_bandwidth(bad)


def test_ladder_options_refuse_what_deliver_cannot_make():
    with pytest.raises(InvalidOption):
        LadderOptions(direct_crfs=(), lr_crfs=()).check()
    with pytest.raises(InvalidOption):
        LadderOptions(factors=(5,)).check()
    with pytest.raises(InvalidOption):
        LadderOptions(direct_crfs=(60,)).check()
    fit = FitSettings(steps=7, train="modulation")
    base = LadderOptions(fit=fit, steps=3).for_package(3, 38)
    assert (base.scale, base.encode.crf, base.layout, base.down) == (pytest.approx(1 / 3), 38, "hls", "bicubic")
    assert (base.fit.steps, base.fit.train) == (3, "modulation")  # the fit's other fields flow through
