"""deliver -> restore with compact weights (modulation codes on the codec-aware restorer): the client
gets exactly the server's figure, a chunk's delta changes exactly its own frames, the manifest is
small, and a damaged or hostile code file is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.media import make_clip
from vsr_pipe.config import EncodeOptions
from vsr_pipe.delivery.client import RestoreOptions, restore
from vsr_pipe.delivery.compact import encode
from vsr_pipe.delivery.fit import FitSettings
from vsr_pipe.delivery.package import MANIFEST, MAX_MANIFEST_BYTES, expanded, file_entry, load_manifest, read_package
from vsr_pipe.delivery.server import DeliverOptions, deliver
from vsr_pipe.io.keyframes import luma_frames
from vsr_pipe.models.correction import CorrectionNet
from vsr_pipe.models.modulation import code_shapes
from vsr_pipe.quality.video import compare_videos

pytestmark = pytest.mark.slow

# db_per_doubling near 0: any gain pays, so the title's file ships even from a 4-step fit.
TINY = FitSettings(steps=4, batch=2, patch=16, train="modulation", start="espcn_y_x2_codec")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    folder = tmp_path_factory.mktemp("modulation")
    master = make_clip(folder / "master.mp4", width=128, height=72, frames=24, audio=True)
    options = DeliverOptions(down="bicubic", max_seconds=0.5, fit=TINY, db_per_doubling=0.01)
    stages: list[tuple] = []
    summary = deliver(str(master.path), str(folder / "title"), options, on_stage=lambda *a: stages.append(a))
    return folder / "title", summary, master, stages


def test_the_titles_fit_is_a_stage_of_its_own_before_any_chunks(package):
    """The title's codes are fitted before any chunk's, for a minute or more on a long title: a line
    says so, rather than silence after the LR is decoded."""
    stages = package[3]
    starts = [name for name, done, _ in stages if done == 0]
    assert starts == ["scan", "lr", "decode", "title", "fit"]
    assert ("title", TINY.steps, TINY.steps) in stages


def _manifest(folder) -> dict:
    return load_manifest((folder / MANIFEST).read_bytes(), MAX_MANIFEST_BYTES)


def _restored(folder, dst, engine="torch") -> list[np.ndarray]:
    restore(str(folder), str(dst), RestoreOptions(engine=engine, encode=EncodeOptions(codec="ffv1")))
    return [y for y, _ in luma_frames(str(dst))]


def test_a_modulation_package_is_small_and_says_what_shipped(package):
    folder, summary, _, _ = package
    lean = _manifest(folder)
    manifest = expanded(lean)
    assert lean["version"] == 7 and manifest["weights_format"] == "modulation"
    assert manifest["architecture"]["start"]["weights"] == "espcn_y_x2_codec"
    # Every byte is fetched by every client: two chunks, a title and two segments in ~180 bytes
    # (v6: ~200, v5: ~460, v4: ~1.2 kB).
    assert (folder / MANIFEST).stat().st_size < 240
    report = json.loads((folder / "report.json").read_text())
    assert [w["what"] for w in report["weights"]] == ["title", "chunk 0", "chunk 1"]
    shipped = [e["file"] for e in [manifest["title"], *manifest["chunks"]] if e and e.get("file")]
    assert summary.weights_bytes == sum((folder / f).stat().st_size for f in shipped)
    assert all((folder / f).stat().st_size < 320 for f in shipped)
    assert read_package(folder).weights_format == "modulation"


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_the_client_gets_exactly_the_servers_figure(package, tmp_path, engine):
    folder, summary, master, _ = package
    _restored(folder, tmp_path / "r.mkv", engine)
    measured = compare_videos(str(master.path), str(tmp_path / "r.mkv"), with_ssim=False).mean_psnr
    assert measured == pytest.approx(summary.tuned_psnr, abs=0.02)


def _rewrite(folder, title_codes, chunk1_codes) -> None:
    """The package with these codes: a title file, and chunk 1's delta from them (chunk 0 none);
    its manifest written again as version 4 (still read)."""
    manifest = {**expanded(_manifest(folder)), "version": 4}
    (folder / "title.mod").write_bytes(encode(title_codes))
    manifest["title"] = file_entry(folder / "title.mod")
    (folder / "chunk_0001.mod").write_bytes(encode(chunk1_codes, title_codes))
    manifest["chunks"][0] = {k: v for k, v in manifest["chunks"][0].items() if k not in ("size", "sha256")}
    manifest["chunks"][0]["file"] = None
    manifest["chunks"][1].update(file_entry(folder / "chunk_0001.mod"))
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_a_chunks_delta_changes_its_own_frames_and_no_others(package, tmp_path):
    import shutil

    folder = tmp_path / "title"
    shutil.copytree(package[0], folder)
    shapes = code_shapes(CorrectionNet(2, 16, 4))
    zero = {k: np.zeros(s, np.int8) for k, s in shapes.items()}
    brighter = {k: v.copy() for k, v in zero.items()}
    brighter["tail.shift"][:] = 40  # +40/512 on every output phase: about +20 codes
    _rewrite(folder, zero, zero)
    plain = _restored(folder, tmp_path / "plain.mkv")
    _rewrite(folder, zero, brighter)
    shifted = _restored(folder, tmp_path / "shifted.mkv")
    diffs = [float(np.mean(b.astype(float) - a.astype(float))) for a, b in zip(plain, shifted)]
    assert len(diffs) == 24
    assert all(abs(d) < 0.01 for d in diffs[:12])
    assert all(15 < d < 25 for d in diffs[12:])


def test_a_damaged_code_file_is_one_line_and_no_output(package, tmp_path):
    import shutil

    folder = tmp_path / "title"
    shutil.copytree(package[0], folder)
    shapes = code_shapes(CorrectionNet(2, 16, 4))
    _rewrite(
        folder,
        {k: np.zeros(s, np.int8) for k, s in shapes.items()},
        {k: np.ones(s, np.int8) for k, s in shapes.items()},
    )
    data = bytearray((folder / "chunk_0001.mod").read_bytes())
    data[-2] ^= 0xFF
    (folder / "chunk_0001.mod").write_bytes(bytes(data))
    result = run_cli("restore", str(folder), "-o", str(tmp_path / "out.mp4"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "chunk_0001.mod" in result.stderr and "sha256" in result.stderr
    manifest = expanded(_manifest(folder))
    manifest["chunks"][1].update(file_entry(folder / "chunk_0001.mod"))  # re-listed: its content is now the check
    (folder / MANIFEST).write_text(json.dumps(manifest))
    result = run_cli("restore", str(folder), "-o", str(tmp_path / "out.mp4"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "chunk_0001.mod" in result.stderr
    assert not (tmp_path / "out.mp4").exists()
