"""A package from anywhere is checked whole: every problem is one PackageError naming the file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import save

from vsr_pipe.delivery.package import (
    FORMAT,
    MANIFEST,
    VERSION,
    PackageError,
    expected_tensors,
    file_entry,
    read_package,
)
from vsr_pipe.weights.store import shipped_sha


def write_package(folder, chunks: int = 2, dtype=np.float16):
    folder.mkdir()
    (folder / "lr.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(100))  # only hashed, never decoded here
    entries = []
    for k in range(chunks):
        tensors = {name: np.zeros(shape, dtype) for name, shape in expected_tensors(2, 4, 1).items()}
        (folder / f"chunk_{k:04d}.safetensors").write_bytes(save(tensors))
        entry = file_entry(folder / f"chunk_{k:04d}.safetensors")
        entries.append({**entry, "index": k, "first_pts": 1000 * k, "last_pts": 1000 * k + 900, "frames": 10})
    manifest = {
        "format": FORMAT, "version": VERSION, "factor": 2, "down": "bicubic", "master_size": [160, 96],
        "lr_size": [80, 48], "time_base": "1/90000",
        "architecture": {
            "model": "corrected", "dtype": "float16",
            "base": {"kind": "espcn", "weights": "espcn_y_x2", "sha256": shipped_sha("espcn_y_x2")},
            "correction": {"scale": 2, "features": 4, "blocks": 1},
        },
        "video": file_entry(folder / "lr.mp4"), "chunks": entries,
    }  # fmt: skip
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


def edit_manifest(folder, change) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_a_whole_package_reads_back(tmp_path):
    pkg = read_package(write_package(tmp_path / "p"))
    assert [c.first_pts for c in pkg.chunks] == [0, 1000]
    assert pkg.master_size == (160, 96) and pkg.base.weights == "espcn_y_x2" and (pkg.features, pkg.blocks) == (4, 1)


@pytest.mark.parametrize(
    "damage, names",
    [
        (lambda p: (p / "chunk_0001.safetensors").unlink(), "chunk_0001.safetensors: missing"),
        (lambda p: (p / "chunk_0000.safetensors").write_bytes((p / "chunk_0000.safetensors").read_bytes()[:-8]), "chunk_0000.safetensors: .* bytes"),
        (lambda p: (p / "lr.mp4").write_bytes(b"\x01" + (p / "lr.mp4").read_bytes()[1:]), "lr.mp4: sha256"),
        (lambda p: (p / MANIFEST).unlink(), "manifest.json: missing"),
        (lambda p: (p / MANIFEST).write_text("{not json"), "manifest.json: not valid JSON"),
        (lambda p: edit_manifest(p, lambda m: m.update(version=99)), "format version 99"),
        (lambda p: edit_manifest(p, lambda m: m["chunks"][1].update(first_pts=500)), "out of order"),
        (lambda p: edit_manifest(p, lambda m: m["video"].update(file="../etc/passwd")), "not a plain file name"),
        (lambda p: edit_manifest(p, lambda m: m["video"].update(size=1 << 41)), "more than"),
        (lambda p: edit_manifest(p, lambda m: m["architecture"]["correction"].update(features=5)), "tensors? .*(expected|match)"),
        (lambda p: edit_manifest(p, lambda m: m.pop("chunks")), "malformed"),
        (lambda p: edit_manifest(p, lambda m: m["architecture"]["base"].update(kind="evil")), "unknown"),
    ],
)  # fmt: skip
def test_a_missing_truncated_or_tampered_file_is_one_error_naming_it(tmp_path, damage, names):
    folder = write_package(tmp_path / "p")
    damage(folder)
    with pytest.raises(PackageError, match=names):
        read_package(folder)


def test_tensors_of_the_wrong_dtype_or_an_extra_tensor_are_refused(tmp_path):
    folder = write_package(tmp_path / "p", dtype=np.float32)
    with pytest.raises(PackageError, match="chunk_0000.safetensors: tensor .* F32"):
        read_package(folder)
    shutil.rmtree(folder)
    folder = write_package(tmp_path / "p")
    tensors = {name: np.zeros(shape, np.float16) for name, shape in expected_tensors(2, 4, 1).items()}
    tensors["correction.extra"] = np.zeros(3, np.float16)
    (folder / "chunk_0001.safetensors").write_bytes(save(tensors))
    edit_manifest(folder, lambda m: m["chunks"][1].update(file_entry(folder / "chunk_0001.safetensors")))
    with pytest.raises(PackageError, match="chunk_0001.safetensors: tensors do not match .*correction.extra"):
        read_package(folder)
    with pytest.raises(PackageError, match="no such folder"):
        read_package(tmp_path / "absent")


def make_joint(folder) -> None:
    """Both chunks name chunk_0000.safetensors, as a --joint package's do."""
    (folder / "chunk_0001.safetensors").unlink()
    edit_manifest(folder, lambda m: (m.update(joint=True), m["chunks"][1].update(file_entry(folder / "chunk_0000.safetensors"))))


def test_a_joint_package_names_one_file_for_every_chunk_and_still_checks_it(tmp_path):
    folder = write_package(tmp_path / "p")
    make_joint(folder)
    pkg = read_package(folder)
    assert pkg.joint and {c.file for c in pkg.chunks} == {"chunk_0000.safetensors"}
    data = bytearray((folder / "chunk_0000.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "chunk_0000.safetensors").write_bytes(bytes(data))
    with pytest.raises(PackageError, match="chunk_0000.safetensors: sha256"):
        read_package(folder)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(joint=False), "name the same chunk_0000.safetensors .not a joint package"),
        (lambda m: m["chunks"][1].update(sha256="0" * 64), "chunk 1 lists chunk_0000.safetensors with another size or sha256"),
        (lambda m: m.update(joint="yes"), "'joint' is 'yes'"),
    ],
)  # fmt: skip
def test_a_joint_manifest_that_disagrees_with_itself_is_refused(tmp_path, change, message):
    folder = write_package(tmp_path / "p")
    make_joint(folder)
    edit_manifest(folder, change)
    with pytest.raises(PackageError, match=message):
        read_package(folder)


def test_a_joint_flag_on_chunks_naming_two_files_is_refused(tmp_path):
    folder = write_package(tmp_path / "p")
    edit_manifest(folder, lambda m: m.update(joint=True))
    with pytest.raises(PackageError, match="must all name one weights file .2 named"):
        read_package(folder)
