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
    edit_manifest(
        folder, lambda m: (m.update(joint=True), m["chunks"][1].update(file_entry(folder / "chunk_0000.safetensors")))
    )


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


def write_embedded(tmp_path, drop: str = "", change=None):
    """A --embed package: a tiny real .mkv with write_package's files attached (its manifest of
    layout embed); ``drop`` leaves one file out, ``change`` edits the manifest first."""
    from tests.media import make_clip
    from vsr_pipe.delivery.package import EMBEDDED_VIDEO
    from vsr_pipe.io.attachments import Attachment, remux_with_attachments

    folder = write_package(tmp_path / "files")
    edit_manifest(folder, lambda m: m.update(layout="embed", video=dict(EMBEDDED_VIDEO)))
    if change:
        edit_manifest(folder, change)
    video = make_clip(tmp_path / "lr.mkv", width=32, height=32, frames=2, audio=False).path
    names = [MANIFEST, "chunk_0000.safetensors", "chunk_0001.safetensors"]
    files = [Attachment(n, "application/octet-stream", (folder / n).read_bytes()) for n in names if n != drop]
    remux_with_attachments(video, tmp_path / "title.mkv", files)
    return tmp_path / "title.mkv"


def test_an_embedded_package_reads_back_from_its_matroska_file(tmp_path):
    from vsr_pipe.delivery.containers import holds_package, read_embedded

    path = write_embedded(tmp_path)
    pkg = read_embedded(path, tmp_path / "work")
    assert pkg.layout == "embed" and pkg.video == path and len(pkg.chunks) == 2
    assert (
        holds_package(path)
        and not holds_package(tmp_path / "lr.mkv")
        and not holds_package(tmp_path / "files" / MANIFEST)
    )


@pytest.mark.parametrize(
    "drop, change, message",
    [
        ("chunk_0001.safetensors", None, "title.mkv: attachment chunk_0001.safetensors: missing"),
        ("", lambda m: m["chunks"][0].update(sha256="0" * 64), "title.mkv: attachment chunk_0000.safetensors: sha256 does not match"),
        ("", lambda m: m["video"].update(sha256="1" * 64), "title.mkv: attachment manifest.json: an embedded package's video entry must be"),
        ("", lambda m: m.update(layout="folder", video={"file": "lr.mp4", "size": 1, "sha256": "0"}), "layout 'folder', not an embedded"),
        (MANIFEST, None, "title.mkv: no manifest.json attachment"),
    ],
)  # fmt: skip
def test_a_damaged_embedded_package_is_one_error_naming_the_file_and_attachment(tmp_path, drop, change, message):
    from vsr_pipe.delivery.containers import read_embedded

    with pytest.raises(PackageError, match=message):
        read_embedded(write_embedded(tmp_path, drop, change), tmp_path / "work")


def test_an_embedded_manifest_in_a_folder_and_a_file_that_is_not_media_are_refused(tmp_path):
    from vsr_pipe.delivery.containers import read_embedded
    from vsr_pipe.delivery.package import EMBEDDED_VIDEO

    folder = write_package(tmp_path / "p")
    edit_manifest(folder, lambda m: m.update(layout="embed", video=dict(EMBEDDED_VIDEO)))
    with pytest.raises(PackageError, match="an embedded package's manifest, outside its Matroska file"):
        read_package(folder)
    with pytest.raises(PackageError, match="not a media file"):
        read_embedded(folder / MANIFEST, tmp_path / "work")


PLAYLIST = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.5,\nlr_0000.ts\n#EXTINF:0.5,\nlr_0001.ts\n#EXT-X-ENDLIST\n"


def write_hls(folder, playlist: str = PLAYLIST):
    """write_package's files as an --hls package: a playlist and two (fake) segments, one per chunk."""
    write_package(folder)
    for k in range(2):
        (folder / f"lr_{k:04d}.ts").write_bytes(bytes([0x47]) + bytes(187) * (k + 1))
    (folder / "lr.m3u8").write_text(playlist)
    video = {**file_entry(folder / "lr.m3u8"), "segments": [file_entry(folder / f"lr_{k:04d}.ts") for k in range(2)]}

    def hls(m):
        m.update(layout="hls", video=video)
        for k in range(2):
            m["chunks"][k]["segment"] = f"lr_{k:04d}.ts"

    edit_manifest(folder, hls)
    return folder


def test_an_hls_package_lists_its_playlist_and_one_segment_per_chunk(tmp_path):
    pkg = read_package(write_hls(tmp_path / "p"))
    assert pkg.layout == "hls" and pkg.video.name == "lr.m3u8"
    assert [c.segment for c in pkg.chunks] == ["lr_0000.ts", "lr_0001.ts"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "lr_0001.ts").write_bytes(b"\x48" + bytes(374)), "lr_0001.ts: sha256"),
        (lambda p: (p / "lr_0000.ts").unlink(), "lr_0000.ts: missing"),
        (lambda p: edit_manifest(p, lambda m: m["chunks"][1].update(segment="lr_0000.ts")), "do not name the playlist's segments"),
        (lambda p: edit_manifest(p, lambda m: m["video"]["segments"][1].update(file="../lr_0001.ts")), "not a plain file name"),
    ],
)  # fmt: skip
def test_a_damaged_hls_package_is_one_error_naming_the_file(tmp_path, damage, message):
    folder = write_hls(tmp_path / "p")
    damage(folder)
    with pytest.raises(PackageError, match=message):
        read_package(folder)


@pytest.mark.parametrize(
    "playlist, message",
    [
        (PLAYLIST.replace("lr_0001.ts\n", "http://elsewhere/lr_0001.ts\n"), "lr.m3u8: its segments are not the manifest's"),
        (PLAYLIST.replace("#EXT-X-ENDLIST", '#EXT-X-KEY:METHOD=AES-128,URI="http://elsewhere/key"'), "lr.m3u8: it names another file"),
        ("lr_0000.ts\n", "lr.m3u8: not an HLS playlist"),
    ],
)  # fmt: skip
def test_a_playlist_that_lists_anything_but_the_manifests_segments_is_refused(tmp_path, playlist, message):
    """The playlist's hash only proves it is the one listed: what it names is checked too, since
    FFmpeg would follow it."""
    with pytest.raises(PackageError, match=message):
        read_package(write_hls(tmp_path / "p", playlist))


def test_a_version_1_package_still_reads_as_a_folder(tmp_path):
    folder = write_package(tmp_path / "p")
    edit_manifest(folder, lambda m: m.update(version=1))
    pkg = read_package(folder)
    assert pkg.layout == "folder" and not pkg.joint and pkg.video.name == "lr.mp4"


def _compact(m) -> None:
    """Version 4 chunk entries: index and segment left to their place."""
    for c in m["chunks"]:
        del c["index"], c["segment"]


def test_a_version_4_chunk_entry_leaves_index_and_segment_to_its_place(tmp_path):
    explicit = read_package(write_hls(tmp_path / "explicit")).chunks
    folder = write_hls(tmp_path / "compact")
    edit_manifest(folder, _compact)
    assert read_package(folder).chunks == explicit


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda m: m.update(version=3), "malformed"),  # version 3 said them: left out there, the entry is damaged
        (lambda m: m["chunks"].pop(), "1 chunks for 2 segments"),
        (lambda m: m["chunks"][1].update(index=0), "out of order"),  # said, an index must still be its place
    ],
)  # fmt: skip
def test_a_compact_chunk_list_is_still_checked(tmp_path, damage, message):
    folder = write_hls(tmp_path / "p")
    edit_manifest(folder, lambda m: (_compact(m), damage(m)))
    with pytest.raises(PackageError, match=message):
        read_package(folder)
