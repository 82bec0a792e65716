"""Manifest versions 5 to 7: the same package in a third (5) and a sixth (6) of the bytes, and a
digest a segment fewer (7), checked as strictly as version 4."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vsr_pipe.delivery import lean_manifest
from vsr_pipe.delivery.compact import encode
from vsr_pipe.delivery.package import FORMAT, MANIFEST, PackageError, expanded, file_entry, read_package
from vsr_pipe.models.correction import CorrectionNet
from vsr_pipe.models.modulation import code_shapes
from vsr_pipe.weights.store import shipped_sha


def full_manifest(folder, segments: int = 3) -> dict:
    """A version-4-shaped HLS modulation manifest over real files in ``folder``, as the server builds it."""
    folder.mkdir()
    seg = []
    for k in range(segments):
        (folder / (lean_manifest.SEGMENT_NAMES % k)).write_bytes(bytes([k]) * (500 + k))
        seg.append(file_entry(folder / (lean_manifest.SEGMENT_NAMES % k)))
    listing = "".join(f"#EXTINF:10.0,\n{s['file']}\n" for s in seg)
    (folder / "lr.m3u8").write_text(f"#EXTM3U\n#EXT-X-VERSION:3\n{listing}#EXT-X-ENDLIST\n")
    shapes = code_shapes(CorrectionNet(2, 16, 4))
    title = {k: np.full(s, 3, np.int8) for k, s in shapes.items()}
    (folder / "title.mod").write_bytes(encode(title))
    (folder / "chunk_0001.mod").write_bytes(encode({k: v + 1 for k, v in title.items()}, title))
    chunks = [{"first_pts": 1000 * k, "last_pts": 1000 * k + 900, "frames": 10} for k in range(segments)]
    chunks[1].update(file_entry(folder / "chunk_0001.mod"))
    return {
        "format": FORMAT, "version": 4, "factor": 2, "down": "bicubic", "master_size": [384, 216],
        "lr_size": [192, 108], "time_base": "1/1000", "frame_rate": "10", "lr_offset": "0", "layout": "hls",
        "joint": False, "weights_format": "modulation",
        "architecture": {
            "model": "corrected",
            "base": {"kind": "espcn", "weights": "espcn_y_x2", "sha256": shipped_sha("espcn_y_x2")},
            "correction": {"scale": 2, "features": 16, "blocks": 4}, "dtype": "int8",
            "start": {"weights": "espcn_y_x2_codec", "sha256": shipped_sha("espcn_y_x2_codec")},
        },
        "video": {**file_entry(folder / "lr.m3u8"), "segments": seg},
        "title": file_entry(folder / "title.mod"), "chunks": chunks,
    }  # fmt: skip


def test_version_5_says_what_version_4_says_in_a_third_of_the_bytes(tmp_path):
    full = full_manifest(tmp_path / "p")
    lean = lean_manifest.pack(full)
    small, big = (len(json.dumps(m, separators=(",", ":"))) for m in (lean, full))
    assert small < 0.4 * big and small < 600
    back = expanded(json.loads(json.dumps(lean)))
    assert back["version"] == 7
    for key in ("factor", "master_size", "lr_size", "time_base", "frame_rate", "layout", "weights_format"):
        assert back[key] == full[key]
    assert [s["file"] for s in back["video"]["segments"]] == [s["file"] for s in full["video"]["segments"]]
    assert [c.get("file") for c in back["chunks"]] == [None, "chunk_0001.mod", None]
    assert [(c["first_pts"], c["last_pts"], c["frames"]) for c in back["chunks"]] == [
        (c["first_pts"], c["last_pts"], c["frames"]) for c in full["chunks"]
    ]  # version 7 writes them from the chunk before
    assert lean["chunks"][1][:3] == lean["chunks"][2][:3]
    assert full["architecture"]["base"]["sha256"].startswith(back["architecture"]["base"]["sha256"])


def test_a_version_5_package_reads_back_and_every_file_is_still_checked(tmp_path):
    folder = tmp_path / "p"
    full = full_manifest(folder)
    (folder / MANIFEST).write_text(json.dumps(lean_manifest.pack(full)))
    pkg = read_package(folder)
    assert pkg.layout == "hls" and len(pkg.chunks) == 3 and pkg.chunks[1].file == "chunk_0001.mod"
    key = sorted(pkg.chunk_codes[0])[0]
    assert (pkg.chunk_codes[1][key] == pkg.chunk_codes[0][key] + 1).all()  # chunk 1's delta
    assert pkg.chunk_codes[2] is pkg.chunk_codes[0]  # no file: the title's codes
    for name, said in [
        ("lr_0001.ts", "lr_0000.ts..lr_0002.ts: the segments' sha256 does not match"),  # one digest for all
        ("chunk_0001.mod", "chunk_0001.mod: sha256 does not match"),
        ("title.mod", "title.mod: sha256 does not match"),
    ]:
        data = bytearray((folder / name).read_bytes())
        data[len(data) // 2] ^= 1  # one bit
        (folder / name).write_bytes(bytes(data))
        with pytest.raises(PackageError, match=said):
            read_package(folder)
        data[len(data) // 2] ^= 1
        (folder / name).write_bytes(bytes(data))
    read_package(folder)


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m.update(base=["espcn", "espcn_y_x2", "3ad"]),  # too short a model hash
        lambda m: m.update(segments=m["segments"][:2]),  # a segment left out
        lambda m: m["segments"].__setitem__(1, "500"),  # a size that is not a number
        lambda m: m.update(video=m["video"][:3]),  # version 7 without the segments' digest
        lambda m: m["chunks"][1].__setitem__(0, -200),  # a chunk starting before the one before ends
        lambda m: m["chunks"][2].__setitem__(1, 9.5),  # a span that is not a whole number
        lambda m: m["chunks"][1].__setitem__(4, 12345),  # a digest that is not a string
        lambda m: m.update(video="embedded"),
        lambda m: m.pop("start"),
    ],
)
def test_a_malformed_version_5_manifest_is_one_package_error(tmp_path, damage):
    folder = tmp_path / "p"
    lean = lean_manifest.pack(full_manifest(folder))
    damage(lean)
    (folder / MANIFEST).write_text(json.dumps(lean))
    with pytest.raises(PackageError, match="manifest.json"):
        read_package(folder)


def as_version_6(lean: dict, full: dict) -> dict:
    """``lean`` (version 7) as version 6 wrote it: each segment with its own digest, each chunk's
    timestamps as they are."""
    segments = [[s["size"], lean_manifest.short_digest(s["sha256"])] for s in full["video"]["segments"]]
    chunks = [[c["first_pts"], c["last_pts"], c["frames"], *row[3:]] for c, row in zip(full["chunks"], lean["chunks"])]
    return {**lean, "version": 6, "video": lean["video"][:3], "segments": segments, "chunks": chunks}


def test_version_7_spends_one_digest_on_all_segments_and_version_6_still_reads(tmp_path):
    from vsr_pipe.delivery import dictionaries

    folder = tmp_path / "p"
    full = full_manifest(folder, segments=14)
    lean = lean_manifest.pack(full)
    old = as_version_6(lean, full)
    v6 = dictionaries.compress(json.dumps(old, separators=(",", ":")).encode(), dictionaries.MANIFEST)
    v7 = lean_manifest.dump(full)
    assert len(v7) < len(v6) - 12 * 16  # twelve digests or more of 16 bytes saved over 14 segments
    for data in (v6, v7):
        (folder / MANIFEST).write_bytes(data)
        assert [c.segment for c in read_package(folder).chunks] == [f"lr_{k:04d}.ts" for k in range(14)]
    (folder / "lr_0013.ts").write_bytes(b"\x47" + (folder / "lr_0013.ts").read_bytes()[1:])  # same size
    with pytest.raises(PackageError, match="the segments' sha256 does not match"):
        read_package(folder)
    (folder / MANIFEST).write_bytes(v6)
    with pytest.raises(PackageError, match="lr_0013.ts: sha256 does not match"):
        read_package(folder)


def test_versions_6_and_7_are_compressed_against_the_shipped_dictionary(tmp_path):
    folder = tmp_path / "p"
    full = full_manifest(folder)
    data = lean_manifest.dump(full)
    plain = json.dumps(lean_manifest.pack(full), separators=(",", ":")).encode()
    assert data.startswith(b"\x28\xb5\x2f\xfd") and len(data) < 0.5 * len(plain)
    assert lean_manifest.load(data, 1 << 20) == json.loads(plain)
    (folder / MANIFEST).write_bytes(data)
    assert read_package(folder).chunks[1].file == "chunk_0001.mod"
    old = as_version_6(lean_manifest.pack(full), full)
    (folder / MANIFEST).write_text(json.dumps({**old, "version": 5}))  # a version-5 package
    assert read_package(folder).chunks[1].file == "chunk_0001.mod"


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:-3],  # cut short
        lambda d: d[:4] + bytes([d[4] ^ 0x40]) + d[5:],  # a header bit
        lambda d: d[:12] + bytes(40) + d[52:],  # the content zeroed
        lambda d: __import__("zstandard").ZstdCompressor().compress(b"{" * 5000),  # not JSON
        lambda d: __import__("zstandard").ZstdCompressor().compress(b'{"version": 5}'),  # compressed, but not 6 or 7
    ],
)
def test_a_damaged_version_6_manifest_is_one_package_error(tmp_path, damage):
    folder = tmp_path / "p"
    data = lean_manifest.dump(full_manifest(folder))
    (folder / MANIFEST).write_bytes(damage(data))
    with pytest.raises(PackageError, match="manifest.json"):
        read_package(folder)


def test_a_manifest_declaring_a_huge_size_is_refused_before_decompressing(tmp_path):
    import zstandard

    folder = tmp_path / "p"
    full_manifest(folder)
    (folder / MANIFEST).write_bytes(zstandard.ZstdCompressor(level=19).compress(b" " * (9 << 20)))  # 9 MB of spaces
    with pytest.raises(PackageError, match="at most"):
        read_package(folder)


def test_the_server_cannot_write_a_name_version_5_would_not_imply(tmp_path):
    full = full_manifest(tmp_path / "p")
    full["title"]["file"] = "other.mod"
    with pytest.raises(ValueError, match="title.mod"):
        lean_manifest.pack(full)
