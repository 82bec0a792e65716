"""restore from a URL as it streams: the LR read from its URL, each chunk's weights fetched and
checked while the chunks before it play, swapped in frame-exactly (waiting, and counting the stall,
when they are late), and a tampered weights file ending the run with one line and no output."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from safetensors.numpy import load_file, save

from tests.conftest import run_cli
from tests.media import make_clip
from vsr_pipe.config import EncodeOptions
from vsr_pipe.delivery.client import RestoreOptions, restore, restore_pipeline
from vsr_pipe.delivery.fit import FitSettings
from vsr_pipe.delivery.package import MANIFEST, file_entry, read_package
from vsr_pipe.delivery.server import DeliverOptions, deliver
from vsr_pipe.delivery.stream import index_first
from vsr_pipe.io.keyframes import luma_frames
from vsr_pipe.pipeline.run import run_to_file

# Real encodes, fits and restores per case: run by .ci/run (make test-slow), not in the fast default.
pytestmark = pytest.mark.slow

TINY = FitSettings(steps=2, features=4, blocks=1, batch=2, patch=16)
LOSSLESS = RestoreOptions(encode=EncodeOptions(crf=0))  # frames compared code by code after the encode
OFFSETS = (0.0, 0.08, -0.08)  # chunk k's correction adds OFFSETS[k] everywhere: 0, about +20, -20 codes


def _offset(folder, k: int, bias: float) -> None:
    """Make chunk ``k``'s correction a constant ``bias`` (in [0, 1] units), and re-list it."""
    path = folder / f"chunk_{k:04d}.safetensors"
    tensors = {name: np.zeros_like(v) for name, v in load_file(str(path)).items()}
    tensors["correction.tail.bias"] += np.float16(bias)
    path.write_bytes(save(tensors))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["chunks"][k].update(file_entry(path))
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A 36-frame, 24 fps title in three chunks of 12 frames whose weights differ visibly, the
    folder restore of it and the generic model's restore of its LR (both lossless)."""
    root = tmp_path_factory.mktemp("site")
    master = make_clip(root / "master.mp4", width=160, height=96, frames=36, audio=True)
    folder = root / "title"
    deliver(str(master.path), str(folder), DeliverOptions(down="bicubic", max_seconds=0.5, fit=TINY))
    for k, bias in enumerate(OFFSETS):
        _offset(folder, k, bias)
    pkg = read_package(folder)
    assert [c.frames for c in pkg.chunks] == [12, 12, 12]
    restore(str(folder), str(root / "folder.mp4"), LOSSLESS)
    generic = replace(restore_pipeline(pkg, LOSSLESS), weights=None)
    run_to_file(str(pkg.video), str(root / "generic.mp4"), generic)
    return folder, luma(root / "folder.mp4"), luma(root / "generic.mp4")


def luma(path) -> list[np.ndarray]:
    return [y.astype(int) for y, _ in luma_frames(str(path))]


class Server:
    """A loopback web server over ``root`` that logs each request's start and end and can hold
    one file back until ``release`` is set."""

    def __init__(self, root, hold: str | None = None):
        self.log: list[tuple[str, str, float]] = []  # (event, path, time.monotonic())
        self.release = threading.Event()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server name)
                server.log.append(("asked", self.path, time.monotonic()))
                if hold and self.path.endswith(hold):
                    server.release.wait(timeout=120)
                super().do_GET()
                server.log.append(("sent", self.path, time.monotonic()))

            def log_message(self, *args) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/"

    def __enter__(self) -> Server:
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.http.shutdown()

    def when(self, event: str, name: str) -> float:
        return next(t for e, path, t in self.log if e == event and path.endswith(name))


def test_a_url_restores_frame_by_frame_as_the_folder_does_fetching_weights_one_chunk_ahead(site, tmp_path):
    folder, from_folder, generic = site
    with Server(folder.parent) as server:
        summary = restore(server.url + "title/" + MANIFEST, str(tmp_path / "out.mp4"), LOSSLESS)
    streamed = luma(tmp_path / "out.mp4")
    assert summary.frames == len(streamed) == len(from_folder) == 36 and streamed[0].shape == (96, 160)
    assert all(np.abs(a - b).max() <= 1 for a, b in zip(streamed, from_folder))  # restores differ by a code at most
    for i, (got, plain) in enumerate(zip(streamed, generic)):
        want = 255 * OFFSETS[i // 12]
        assert abs(float(np.mean(got - plain)) - want) < 6, f"frame {i}: not from chunk {i // 12}'s weights"
    asked = [path.rsplit("/", 1)[-1] for event, path, _ in server.log if event == "asked"]
    assert asked[0] == MANIFEST and "lr.mp4" in asked  # the LR is read from its URL, as it plays
    weights = [name for name in asked if name.endswith(".safetensors")]
    assert weights == ["chunk_0000.safetensors", "chunk_0001.safetensors", "chunk_0002.safetensors"]
    # Fetched one swap ahead: chunk 2's weights only once chunk 1's had come.
    assert server.when("asked", "chunk_0002.safetensors") > server.when("sent", "chunk_0001.safetensors")


def test_late_weights_stall_the_swap_rather_than_use_wrong_weights(site, tmp_path):
    """Chunk 1's weights are held back until all of chunk 0 is written: the run waits at chunk 1's
    first frame (a stall, counted), then goes on frame-exactly."""
    folder, from_folder, _ = site
    progress: list[tuple[int, float]] = []
    with Server(folder.parent, hold="chunk_0001.safetensors") as server:

        def on_progress(p) -> None:
            progress.append((p.frames, time.monotonic()))
            if p.frames >= 12:
                server.release.set()

        summary = restore(server.url + "title/" + MANIFEST, str(tmp_path / "out.mp4"), LOSSLESS, on_progress)
    arrived = server.when("sent", "chunk_0001.safetensors")
    written_before = max(frames for frames, t in progress if t < arrived)
    assert written_before >= 12  # all of chunk 0 was written before chunk 1's weights came
    assert summary.weight_stalls >= 1 and summary.weight_wait_s > 0
    streamed = luma(tmp_path / "out.mp4")
    assert len(streamed) == 36 and all(np.abs(a - b).max() <= 1 for a, b in zip(streamed, from_folder))


def test_a_tampered_weights_file_on_the_server_is_one_line_and_no_output(site, tmp_path):
    folder, _, _ = site
    bad = shutil.copytree(folder, tmp_path / "site" / "title")
    data = bytearray((bad / "chunk_0002.safetensors").read_bytes())
    data[-1] ^= 1
    (bad / "chunk_0002.safetensors").write_bytes(bytes(data))
    out = tmp_path / "out" / "restored.mp4"
    out.parent.mkdir()
    with Server(bad.parent) as server:
        url = server.url + "title/"
        failed = run_cli("restore", url + MANIFEST, "-o", out, "--json")
    assert failed.returncode != 0 and "Traceback" not in failed.stderr and not failed.stdout
    assert failed.stderr.count("\n") == 1
    assert failed.stderr.strip() == (
        f"vsr-pipe: error: {url}chunk_0002.safetensors: sha256 does not match the manifest (damaged or tampered with)"
    )
    assert not list(out.parent.iterdir())  # no output, no partial file


def test_an_mp4_without_faststart_is_fetched_whole_and_checked(site, tmp_path):
    """deliver writes lr.mp4 with its index first; an older package's, index last, still restores."""
    folder, from_folder, _ = site
    old = shutil.copytree(folder, tmp_path / "site" / "title")
    lr = old / "lr.mp4"
    _remux_index_last(folder / "lr.mp4", lr)
    manifest = json.loads((old / MANIFEST).read_text())
    manifest["video"].update(file_entry(lr))
    (old / MANIFEST).write_text(json.dumps(manifest))
    shutil.copy(folder / "lr.mp4", old.parent / "faststart.mp4")
    with Server(old.parent) as server:
        assert index_first(server.url + "title/lr.mp4") is False
        assert index_first(server.url + "faststart.mp4") is True
        summary = restore(server.url + "title/" + MANIFEST, str(tmp_path / "out.mp4"), LOSSLESS)
    assert any("not faststart" in note for note in summary.notes)
    streamed = luma(tmp_path / "out.mp4")
    assert len(streamed) == 36 and all(np.abs(a - b).max() <= 1 for a, b in zip(streamed, from_folder))


def _remux_index_last(src, dst) -> None:
    """``src``'s streams copied into an MP4 written the plain way: its index (moov) after the media."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
