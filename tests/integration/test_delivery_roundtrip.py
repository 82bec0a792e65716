"""deliver -> restore: the package's parts, keyframes at chunk starts, and each restored frame made by
its own chunk's weights (swapped frame-exactly, no engine rebuild)."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from dataclasses import replace

import numpy as np
import pytest
from safetensors.numpy import load_file, save

from tests.conftest import run_cli
from tests.media import make_clip
from vsr_pipe.delivery.client import open_package, restore_pipeline
from vsr_pipe.delivery.fit import FitSettings
from vsr_pipe.delivery.package import MANIFEST, file_entry, read_package
from vsr_pipe.delivery.server import DeliverOptions, deliver
from vsr_pipe.io.keyframes import keyframe_pts, luma_frames
from vsr_pipe.pipeline.run import iter_planes

# Real subprocesses and media per case: run by .ci/run (make test-slow), not in the fast default.
pytestmark = pytest.mark.slow

TINY = FitSettings(steps=2, features=4, blocks=1, batch=2, patch=16)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A 24-frame clip at 24 fps delivered in chunks of at most 0.5 s: two chunks of 12 frames."""
    folder = tmp_path_factory.mktemp("deliver")
    master = make_clip(folder / "master.mp4", width=160, height=96, frames=24, audio=True)
    options = DeliverOptions(down="bicubic", max_seconds=0.5, fit=TINY)
    summary = deliver(str(master.path), str(folder / "title"), options)
    return folder / "title", summary, master


def test_deliver_writes_a_checked_package_with_keyframes_at_chunk_starts(package):
    folder, summary, master = package
    assert summary.frames == 24 and summary.chunks == 2
    assert sorted(p.name for p in folder.iterdir()) == [
        "chunk_0000.safetensors", "chunk_0001.safetensors", "lr.mp4", "manifest.json", "psnr.png", "report.json",
    ]  # fmt: skip
    pkg = read_package(folder)
    lr_pts = [p for _, p in luma_frames(str(pkg.video))]
    assert len(lr_pts) == 24 and [c.first_pts for c in pkg.chunks] == [lr_pts[0], lr_pts[12]]
    assert [c.last_pts for c in pkg.chunks] == [lr_pts[11], lr_pts[23]]
    assert {lr_pts[0], lr_pts[12]} <= set(keyframe_pts(str(pkg.video)))
    assert next(luma_frames(str(pkg.video)))[0].shape == (48, 80)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["quality"]["tuned_psnr"] >= manifest["quality"]["generic_psnr"]
    assert all(f["sha256"] == file_entry(folder / f["file"])["sha256"] for f in manifest["files"])
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".title")]  # no staging left


def _brighter(folder, k: int) -> None:
    """Make chunk ``k``'s correction add about +20 codes everywhere, and re-list it."""
    path = folder / f"chunk_{k:04d}.safetensors"
    tensors = {name: np.zeros_like(v) for name, v in load_file(str(path)).items()}
    tensors["correction.tail.bias"] += np.float16(0.08)
    path.write_bytes(save(tensors))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["chunks"][k].update(file_entry(path))
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _zero(folder, k: int) -> None:
    path = folder / f"chunk_{k:04d}.safetensors"
    path.write_bytes(save({name: np.zeros_like(v) for name, v in load_file(str(path)).items()}))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["chunks"][k].update(file_entry(path))
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_each_restored_frame_comes_from_its_own_chunks_weights(package, tmp_path, engine):
    import shutil

    folder = tmp_path / "title"
    shutil.copytree(package[0], folder)
    _zero(folder, 0)  # chunk 0: exactly the generic model
    _brighter(folder, 1)  # chunk 1: visibly brighter
    pkg = read_package(folder)
    options = replace(restore_pipeline(pkg), engine=engine)
    restored = [planes[0].astype(int).copy() for planes, _, _ in iter_planes(str(pkg.video), options)]
    generic_options = replace(options, weights=None)
    generic = [planes[0].astype(int).copy() for planes, _, _ in iter_planes(str(pkg.video), generic_options)]
    assert len(restored) == len(generic) == 24 and restored[0].shape == (96, 160)
    for i, (got, plain) in enumerate(zip(restored, generic)):
        diff = float(np.mean(got - plain))
        if i < 12:
            assert np.abs(got - plain).max() <= 1, f"frame {i}: not from chunk 0's weights"
        else:
            assert 10 < diff < 25, f"frame {i}: not from chunk 1's weights (mean difference {diff:.1f})"


def test_restore_cli_writes_the_master_size_and_refuses_a_tampered_package(package, tmp_path):
    import shutil

    out = tmp_path / "out.mp4"
    done = run_cli("restore", package[0], "-o", out, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["frames"] == 24 and summary["output_size"] == [160, 96]
    bad = tmp_path / "bad"
    shutil.copytree(package[0], bad)
    data = bytearray((bad / "chunk_0001.safetensors").read_bytes())
    data[-1] ^= 1
    (bad / "chunk_0001.safetensors").write_bytes(bytes(data))
    failed = run_cli("restore", bad, "-o", tmp_path / "bad.mp4")
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert failed.stderr.count("\n") == 1 and "chunk_0001.safetensors: sha256" in failed.stderr
    assert not (tmp_path / "bad.mp4").exists()


# Restores in a process whose temporary folder is ``TMPDIR``, looking for weights files in it at
# every chunk (while the restore's own work folder exists) and once more at the end.
_RESTORE_WATCHING_TMP = """
import os, pathlib, sys
import vsr_pipe
seen = set()
def look(progress=None):
    seen.update(p.name for p in pathlib.Path(os.environ["TMPDIR"]).rglob("*.safetensors"))
summary = vsr_pipe.restore(sys.argv[1], sys.argv[2], on_progress=look)
look()
print(summary.frames, sorted(seen))
"""


def test_a_restore_writes_no_weights_file(package, tmp_path):
    """Each chunk's full model goes to the engine from memory: nothing writes a model file to read
    it back (the temporary folder holds no .safetensors at any chunk of the restore)."""
    import os
    import subprocess
    import sys

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    out = tmp_path / "out.mp4"
    done = subprocess.run(
        [sys.executable, "-c", _RESTORE_WATCHING_TMP, str(package[0]), str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "24" and done.stdout.strip().endswith("[]"), done.stdout
    assert not list(tmp.rglob("*.safetensors"))


def test_a_package_restores_from_a_url(package, tmp_path):
    handler = functools.partial(_Quiet, directory=str(package[0]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{MANIFEST}"
        pkg = open_package(url, tmp_path)
        assert len(pkg.chunks) == 2 and pkg.video.read_bytes() == (package[0] / "lr.mp4").read_bytes()
        with pytest.raises(Exception, match="cannot fetch"):
            open_package(url.replace(MANIFEST, "nothing.json"), tmp_path / "x")
    finally:
        server.shutdown()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_deliver_cli_options_and_one_line_errors(tmp_path):
    master = make_clip(tmp_path / "m.mp4", width=96, height=64, frames=6, audio=False)
    bad = run_cli("deliver", master.path, "-o", tmp_path / "t", "--scale", "0.7")
    assert bad.returncode != 0 and "0.5, 1/3 or 0.25" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("deliver", master.path, "-o", tmp_path / "t", "--budget", "many")
    assert bad.returncode != 0 and "--budget" in bad.stderr
    done = run_cli(
        "deliver", master.path, "-o", tmp_path / "t", "--down", "bicubic", "--budget", "1", "--features", "4",
        "--blocks", "0", "--bitrate", "100k", "--chunks", "1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["chunks"] == 1 and summary["frames"] == 6 and summary["mode"] == "per-chunk"
    assert "chunk 0: 6 frames, 1 steps" in done.stderr
    done = run_cli(
        "deliver", master.path, "-o", tmp_path / "j", "--down", "bicubic", "--budget", "1", "--features", "4",
        "--blocks", "0", "--max-seconds", "0.125", "--joint", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["mode"] == "joint" and summary["chunks"] == 2
    assert "[2/2] chunk 1: 3 frames, joint fit 2 steps" in done.stderr


@pytest.mark.parametrize("down", ["irn", "bicubic"])
def test_the_restored_video_measures_what_the_package_reports(tmp_path, down):
    """The server's figure (fit in fp32 on the decoded LR) is what the client's pipeline gives."""
    master = make_clip(tmp_path / "m.mp4", width=128, height=64, frames=8, audio=False)
    fit = FitSettings(steps=30, features=8, blocks=1, batch=4, patch=16, learning_rate=3e-3)
    deliver(str(master.path), str(tmp_path / "t"), DeliverOptions(down=down, fit=fit))
    pkg = read_package(tmp_path / "t")
    options = restore_pipeline(pkg)
    restored = [planes[0].astype(float).copy() for planes, _, _ in iter_planes(str(pkg.video), options)]
    reference = [y.astype(float) for y, _ in luma_frames(str(master.path))]
    psnr = [10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-10)) for a, b in zip(restored, reference)]
    report = json.loads((tmp_path / "t" / "report.json").read_text())
    assert len(restored) == 8 and restored[0].shape == (64, 128)
    assert abs(np.mean(psnr) - report["quality"]["tuned_psnr"]) < 0.1


def test_chunks_fitted_in_worker_processes_give_the_same_package(package, tmp_path):
    """fit_chunk is a pure task: local processes (the runner Ray shares) give the same weights."""
    from vsr_pipe.runners import make_runner

    folder, _, master = package
    options = DeliverOptions(down="bicubic", max_seconds=0.5, fit=TINY)
    deliver(str(master.path), str(tmp_path / "title"), options, runner=make_runner(workers=2))
    here, there = read_package(folder), read_package(tmp_path / "title")
    assert [c.first_pts for c in here.chunks] == [c.first_pts for c in there.chunks]
    for a, b in zip(here.chunks, there.chunks):
        mine, theirs = load_file(str(folder / a.file)), load_file(str(tmp_path / "title" / b.file))
        assert all(np.allclose(mine[k], theirs[k], atol=1e-3) for k in mine)


def test_an_interrupted_deliver_leaves_no_package_and_keeps_the_old_one(package, tmp_path):
    import shutil

    folder, _, master = package
    target = tmp_path / "title"
    shutil.copytree(folder, target)
    before = (target / MANIFEST).read_bytes()

    def interrupt(done) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deliver(
            str(master.path), str(target), DeliverOptions(down="bicubic", max_seconds=0.5, fit=TINY), on_chunk=interrupt
        )
    assert (target / MANIFEST).read_bytes() == before
    # No staging folder left; the chunk fitted before the interruption waits for a rerun.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".title.chunks", "title"]


def test_an_interrupted_deliver_run_again_reuses_its_finished_chunks(package, tmp_path):
    folder, _, master = package
    options = DeliverOptions(down="bicubic", max_seconds=0.5, fit=TINY)
    target, cache = tmp_path / "title", tmp_path / ".title.chunks"

    def interrupt(done) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deliver(str(master.path), str(target), options, on_chunk=interrupt)
    assert not target.exists() and len(list(cache.glob("*.safetensors"))) == len(list(cache.glob("*.json"))) == 1
    progress = []
    summary = deliver(str(master.path), str(target), options, on_chunk=progress.append)
    assert [(d.result.index, d.reused) for d in progress] == [(0, True), (1, False)]  # one fit, not two
    assert summary.reused == 1 and not cache.exists()
    for k in (0, 1):  # the same weights as the uninterrupted run
        name = f"chunk_{k:04d}.safetensors"
        assert (target / name).read_bytes() == (folder / name).read_bytes()
    assert read_package(target).chunks == read_package(folder).chunks


def test_a_joint_fit_ships_one_weights_file_that_every_chunk_names(package, tmp_path):
    """--joint: one correction over both chunks' frames, with both chunks' budget; one file, listed twice."""
    _, _, master = package
    options = DeliverOptions(down="bicubic", max_seconds=0.5, fit=TINY, joint=True)
    summary = deliver(str(master.path), str(tmp_path / "title"), options)
    folder = tmp_path / "title"
    assert summary.mode == "joint" and summary.chunks == 2
    assert sorted(p.name for p in folder.glob("*.safetensors")) == ["joint.safetensors"]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["joint"] is True and {c["file"] for c in manifest["chunks"]} == {"joint.safetensors"}
    assert summary.weights_bytes == (folder / "joint.safetensors").stat().st_size
    report = json.loads((folder / "report.json").read_text())
    assert report["mode"] == "joint" and [c["steps"] for c in report["chunks"]] == [2 * TINY.steps] * 2
    assert [len(c["tuned_per_frame"]) for c in report["chunks"]] == [12, 12]
    pkg = read_package(folder)
    assert pkg.joint and [c.first_pts for c in pkg.chunks] == [c.first_pts for c in read_package(package[0]).chunks]
    restoring = restore_pipeline(pkg)
    assert len(restoring.weights.swaps) == 1  # the same weights all along: nothing to swap
    restored = [planes[0].copy() for planes, _, _ in iter_planes(str(pkg.video), restoring)]
    assert len(restored) == 24 and restored[0].shape == (96, 160)
