"""deliver --embed and --hls: the package as one Matroska file, and as an HLS playlist whose segments
are exactly the chunks; each restores as a folder package does, and is checked as strictly."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading

import av
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.media import make_clip
from vsr_pipe.delivery.client import open_package, restore
from vsr_pipe.delivery.fit import FitSettings
from vsr_pipe.delivery.package import EMBEDDED_VIDEO, MANIFEST, PackageError, read_package
from vsr_pipe.delivery.server import DeliverOptions, deliver
from vsr_pipe.errors import InvalidOption, OutputError
from vsr_pipe.io.attachments import Attachment, read_attachments, remux_with_attachments
from vsr_pipe.io.keyframes import keyframe_pts, luma_frames

# Real encodes, fits and subprocesses per case: run by .ci/run (make test-slow), not in the fast default.
pytestmark = pytest.mark.slow

TINY = FitSettings(steps=2, features=4, blocks=1, batch=2, patch=16)


def options(layout: str) -> DeliverOptions:
    """Chunks of at most 0.5 s of the 24-frame, 24 fps master: two of 12 frames."""
    return DeliverOptions(down="bicubic", max_seconds=0.5, fit=TINY, layout=layout)


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("master") / "master.mp4", width=160, height=96, frames=24, audio=True)


@pytest.fixture(scope="module")
def embedded(master, tmp_path_factory):
    path = tmp_path_factory.mktemp("embed") / "title.mkv"
    return path, deliver(str(master.path), str(path), options("embed"))


def luma(path) -> list[np.ndarray]:
    return [y for y, _ in luma_frames(str(path))]


def close(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """The same restoration: two restores of one package differ by a code at most (they are not
    bit-exact run to run, whatever the package's form)."""
    return len(a) == len(b) and all(np.abs(x.astype(int) - y).max() <= 1 for x, y in zip(a, b))


def test_embed_writes_one_matroska_file_with_the_package_attached(embedded, tmp_path):
    path, summary = embedded
    assert summary.layout == "embed" and summary.chunks == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["title.mkv"]  # no staging folder, no chunk cache
    names = [a.name for a in read_attachments(path)]
    assert names == [MANIFEST, "chunk_0000.safetensors", "chunk_0001.safetensors", "report.json", "psnr.png"]
    pkg = open_package(str(path), tmp_path)
    assert pkg.layout == "embed" and pkg.video == path and pkg.manifest["video"] == EMBEDDED_VIDEO
    lr_pts = [p for _, p in luma_frames(str(path))]
    assert len(lr_pts) == 24 and [c.first_pts for c in pkg.chunks] == [lr_pts[0], lr_pts[12]]
    assert {lr_pts[0], lr_pts[12]} <= set(keyframe_pts(str(path)))  # each chunk decodes on its own
    with av.open(str(path)) as container:
        assert container.streams.audio and container.streams.video[0].codec_context.width == 80


def test_restore_and_the_plain_command_restore_an_embedded_package_alike(embedded, tmp_path):
    path, _ = embedded
    done = run_cli("restore", path, "-o", tmp_path / "restored.mp4", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output_size"] == [160, 96]
    plain = run_cli(path, "-o", tmp_path / "plain.mp4")
    assert plain.returncode == 0, plain.stderr
    assert "carries a delivery package: restoring it with its weights" in plain.stderr
    a, b = luma(tmp_path / "restored.mp4"), luma(tmp_path / "plain.mp4")
    assert len(a) == len(b) == 24 and close(a, b)


def test_a_tampered_embedded_package_is_one_line_naming_the_attachment(embedded, tmp_path):
    path, _ = embedded
    files = read_attachments(path)
    k = next(i for i, a in enumerate(files) if a.name == "chunk_0001.safetensors")
    data = bytearray(files[k].data)
    data[-1] ^= 1
    files[k] = Attachment(files[k].name, files[k].mimetype, bytes(data))
    bad = tmp_path / "bad.mkv"
    remux_with_attachments(path, bad, files)
    for args in (("restore", bad), (bad,)):
        failed = run_cli(*args, "-o", tmp_path / "out.mp4")
        assert failed.returncode != 0 and "Traceback" not in failed.stderr
        assert failed.stderr.splitlines()[-1].endswith(
            "bad.mkv: attachment chunk_0001.safetensors: sha256 does not match the manifest (damaged or tampered with)"
        )
        assert not (tmp_path / "out.mp4").exists()


def test_embed_replaces_an_embedded_package_but_nothing_else(master, embedded, tmp_path):
    other = make_clip(tmp_path / "other.mkv", width=32, height=32, frames=2, audio=False).path
    before = other.read_bytes()
    with pytest.raises(OutputError, match="other.mkv exists and is not an embedded delivery package"):
        deliver(str(master.path), str(other), options("embed"))
    assert other.read_bytes() == before
    with pytest.raises(InvalidOption, match="should end in .mkv"):
        deliver(str(master.path), str(tmp_path / "title"), options("embed"))
    target = tmp_path / "title.mkv"
    shutil.copy(embedded[0], target)
    deliver(str(master.path), str(target), options("embed"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.mkv", "title.mkv"]


@pytest.fixture(scope="module")
def hls(master, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hls") / "title"
    return folder, deliver(str(master.path), str(folder), options("hls"))


def test_hls_segments_are_exactly_the_chunks_and_the_playlist_plays_as_it_is(hls):
    folder, summary = hls
    assert summary.layout == "hls" and summary.chunks == 2
    assert sorted(p.name for p in folder.iterdir()) == [
        "chunk_0000.safetensors", "chunk_0001.safetensors", "lr.m3u8", "lr_0000.ts", "lr_0001.ts",
        MANIFEST, "psnr.png", "report.json",
    ]  # fmt: skip
    pkg = read_package(folder)
    assert pkg.layout == "hls" and pkg.video == folder / "lr.m3u8"
    for chunk in pkg.chunks:  # one segment per chunk, starting at its keyframe, holding its frames
        pts = [p for _, p in luma_frames(str(folder / chunk.segment))]
        assert (len(pts), pts[0], pts[-1]) == (chunk.frames, chunk.first_pts, chunk.last_pts)
        assert keyframe_pts(str(folder / chunk.segment)) == [chunk.first_pts]
    assert len(luma(folder / "lr.m3u8")) == 24
    with av.open(str(folder / "lr.m3u8")) as container:
        assert container.streams.audio and container.streams.video[0].codec_context.width == 80
    assert [s["file"] for s in pkg.manifest["video"]["segments"]] == ["lr_0000.ts", "lr_0001.ts"]


def test_hls_refuses_an_lr_whose_segments_are_not_the_chunks(master, tmp_path):
    """An encoder told to make keyframes inside chunks (a GOP of 4) would cut more segments than chunks."""
    from dataclasses import replace

    from vsr_pipe.config import EncodeOptions
    from vsr_pipe.delivery.server import DeliveryFailed

    gop = replace(options("hls"), encode=EncodeOptions(crf=23, codec_options=(("g", "4"),)))
    with pytest.raises(DeliveryFailed, match="playlist has 6 segments for 2 chunks"):
        deliver(str(master.path), str(tmp_path / "title"), gop)
    assert not list(tmp_path.iterdir())  # no package, no staging folder


def test_a_scene_cut_inside_a_chunk_makes_no_segment_of_its_own(tmp_path):
    """x264 puts a keyframe at a scene cut unless told not to; --hls tells it, so one chunk stays one segment."""
    from dataclasses import replace

    from vsr_pipe.delivery.chunks import ChunkRules

    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
    with av.open(str(tmp_path / "cut.mp4"), "w") as out:  # 48 frames, the picture inverted from frame 24
        stream = out.add_stream("libx264", rate=24, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(48):
            picture = np.roll(scene if i < 24 else 255 - scene, i, axis=1)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        out.mux(stream.encode(None))
    one_chunk = replace(options("hls"), max_seconds=10, rules=ChunkRules(cap=1))
    summary = deliver(str(tmp_path / "cut.mp4"), str(tmp_path / "title"), one_chunk)
    assert summary.chunks == 1 and [p.name for p in (tmp_path / "title").glob("*.ts")] == ["lr_0000.ts"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_an_hls_package_restores_from_its_folder_its_manifest_url_and_its_playlist_url(hls, tmp_path):
    folder = shutil.copytree(hls[0], tmp_path / "site" / "title")
    done = run_cli("restore", folder, "-o", tmp_path / "local.mp4")
    assert done.returncode == 0, done.stderr
    shutil.copy(folder / "lr.m3u8", folder / "other.m3u8")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/title/"
        restore(url + MANIFEST, str(tmp_path / "manifest.mp4"))
        restore(url + "lr.m3u8", str(tmp_path / "playlist.mp4"))
        with pytest.raises(
            PackageError, match="other.m3u8: the manifest.json beside it is not this playlist's package"
        ):
            restore(url + "other.m3u8", str(tmp_path / "x.mp4"))
    finally:
        server.shutdown()
    frames = [luma(tmp_path / f"{name}.mp4") for name in ("local", "manifest", "playlist")]
    assert [len(f) for f in frames] == [24, 24, 24] and frames[0][0].shape == (96, 160)
    assert all(close(frames[0], f) for f in frames[1:])


def test_deliver_cli_writes_the_layout_asked_for(master, tmp_path):
    both = run_cli("deliver", master.path, "-o", tmp_path / "t.mkv", "--hls", "--embed")
    assert both.returncode != 0 and "give --hls or --embed, not both" in both.stderr
    done = run_cli(
        "deliver", master.path, "-o", tmp_path / "t.mkv", "--embed", "--down", "bicubic", "--budget", "1",
        "--features", "4", "--blocks", "0", "--chunks", "1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["layout"] == "embed" and sorted(p.name for p in tmp_path.iterdir()) == ["t.mkv"]


@pytest.fixture(scope="module")
def irn_hls(master, tmp_path_factory):
    """An HLS package of irn's LR, in a folder served as a site would serve it."""
    site = tmp_path_factory.mktemp("irn_hls")
    deliver(str(master.path), str(site / "title"), DeliverOptions(down="irn", max_seconds=0.5, fit=TINY, layout="hls"))
    return site


def test_an_irn_hls_package_restores_saying_no_assumption_and_naming_its_url(irn_hls, tmp_path):
    """MPEG-TS keeps no rescaling tag: the manifest says the factor, so the restore assumes nothing
    aloud. From a URL, the summary's input is the URL, not the temporary copy's path."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(irn_hls)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/title/{MANIFEST}"
    try:
        streamed = run_cli("restore", url, "-o", tmp_path / "streamed.mp4", "--json")
    finally:
        server.shutdown()
    local = run_cli("restore", irn_hls / "title", "-o", tmp_path / "local.mp4")
    for done in (streamed, local):
        assert done.returncode == 0 and "note" not in done.stderr, done.stderr
    summary = json.loads(streamed.stdout)
    assert summary["input"] == url and summary["notes"] == []


def first_times(path) -> tuple[float, float]:
    """The first video frame's and the first audio frame's times, in seconds, as decoded."""
    with av.open(str(path)) as container:
        video = next(container.decode(video=0))
    with av.open(str(path)) as container:
        audio = next(container.decode(audio=0))
    return float(video.time), float(audio.time)


def test_an_hls_package_restores_on_the_masters_timeline(master, irn_hls, tmp_path):
    """MPEG-TS starts the LR late when a stream would start before 0 (B-frames, AAC priming); the
    restored frames and sound start when the master's do."""
    assert first_times(irn_hls / "title" / "lr.m3u8") != first_times(master.path)  # the LR itself runs late
    restore(str(irn_hls / "title"), str(tmp_path / "restored.mp4"))
    assert first_times(tmp_path / "restored.mp4") == pytest.approx(first_times(master.path), abs=1e-3)
