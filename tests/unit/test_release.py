"""`vsr-pipe train` exports into its run folder; only `--release` touches the package, and never halfway."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from vsr_pipe.cli import main
from vsr_pipe.weights import store


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A data folder shaped like ../shared/data: a few tiny generated images in each set."""
    from PIL import Image

    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for sub in ("T91", "BSD200", "Set5", "Set14"):
        (root / sub).mkdir()
        for i in range(2):
            base = rng.integers(0, 255, (8, 8, 3)).astype(np.uint8)
            Image.fromarray(base).resize((40, 36), Image.BICUBIC).save(root / sub / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A 3-step x2 ESPCN run through the real command, with its default export; the shipped
    files' hashes from before it."""
    shipped = store.shipped_dir()
    before = {p.name: sha(p) for p in (shipped / "espcn_y_x2.safetensors", shipped / store.MANIFEST)}
    run = tmp_path_factory.mktemp("run")
    args = ["train", "--scale", "2", "--data", str(data), "--out", str(run), "--steps", "3", "--batch", "2",
            "--patch", "8"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return run, before, result


def test_default_export_goes_to_the_run_folder_and_leaves_the_shipped_weights_alone(trained):
    run, before, result = trained
    shipped = store.shipped_dir()
    assert {name: sha(shipped / name) for name in before} == before
    exported = run / "export" / "espcn_y_x2.safetensors"
    entry = json.loads((run / "export" / "manifest.json").read_text())["espcn_y_x2"]
    assert entry["sha256"] == sha(exported) and entry["training"]["steps"] == 3
    assert set(entry["figures"]) >= {"Set5", "Set14"} and "z_temperature" not in entry["training"]
    assert json.loads(result.stdout) == entry
    assert store.load_model(exported).scale == 2
    assert sorted(p.name for p in (run / "export").iterdir()) == ["espcn_y_x2.safetensors", "manifest.json"]


def test_release_replaces_the_weights_and_their_entry_only(trained, data, tmp_path, monkeypatch):
    run, shipped_before, _ = trained
    real = store.shipped_dir()
    package = tmp_path / "weights"  # a copy: a test never writes into the real package
    shutil.copytree(store.shipped_dir(), package, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    old = json.loads((package / store.MANIFEST).read_text())
    monkeypatch.setattr(store, "shipped_dir", lambda: package)
    args = ["train", "--scale", "2", "--data", str(data), "--out", str(run), "--steps", "3", "--release"]
    result = CliRunner().invoke(main, args)  # the run is done: it only exports again
    assert result.exit_code == 0, result.output
    new = json.loads((package / store.MANIFEST).read_text())
    assert new["espcn_y_x2"]["sha256"] == sha(package / "espcn_y_x2.safetensors") != old["espcn_y_x2"]["sha256"]
    assert {k: v for k, v in new.items() if k != "espcn_y_x2"} == {k: v for k, v in old.items() if k != "espcn_y_x2"}
    assert {name: sha(real / name) for name in shipped_before} == shipped_before
    replaced = f"replacing the file there (sha256 {old['espcn_y_x2']['sha256'][:16]} -> {new['espcn_y_x2']['sha256'][:16]})"
    assert replaced in result.output + result.stderr  # a release says what it overwrote


def test_release_of_an_rgb_model_is_refused_before_training(data, tmp_path):
    args = ["train", "--scale", "2", "--rgb", "--release", "--data", str(data), "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "--release" in result.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("fail_at", ["weights", "manifest", "rename"])
def test_an_export_that_fails_midway_leaves_no_partial_file(trained, tmp_path, monkeypatch, fail_at):
    from pathlib import Path

    from vsr_pipe.train.release import export_espcn

    run, _, _ = trained
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "espcn_y_x2.safetensors").write_bytes(b"previous weights")
    (folder / "manifest.json").write_text("{}\n")
    real_write_bytes = Path.write_bytes

    def full_disk(path, data):
        if fail_at in path.name:  # ".manifest.json.<pid>.tmp" and so on
            real_write_bytes(path, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return real_write_bytes(path, data)

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    fail_at = {"weights": "safetensors", "manifest": "manifest"}.get(fail_at, fail_at)
    monkeypatch.setattr(Path, "write_bytes", full_disk)
    if fail_at == "rename":
        monkeypatch.setattr(store.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        export_espcn(run / "checkpoint.safetensors", None, folder, log=lambda m: None)
    assert sorted(p.name for p in folder.iterdir()) == ["espcn_y_x2.safetensors", "manifest.json"]
    assert (folder / "espcn_y_x2.safetensors").read_bytes() == b"previous weights"
    assert (folder / "manifest.json").read_text() == "{}\n"
