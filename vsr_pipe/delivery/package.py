"""The delivery package on disk: ``manifest.json`` written by the server, read back and checked
by the client before anything in it is used.

A package comes from anywhere, so reading one trusts nothing: the manifest's size is bounded and
its fields typed; file names are plain names inside the package; every file's size and sha256 must
match; each chunk's safetensors header must list exactly the correction network's tensors, with
their shapes and dtype (a joint package's chunks all name one file, checked once); the timestamps
must be in order. Any failure is one :class:`PackageError` naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import VsrPipeError
from .fit import PREFIX, BaseModel

FORMAT = "vsr-pipe-delivery"
VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 8 << 20
MAX_WEIGHTS_BYTES = 64 << 20
MAX_CHUNKS = 100_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DTYPES = {"float16": "F16", "float32": "F32"}


class PackageError(VsrPipeError, ValueError):
    """A delivery package that is missing, damaged, tampered with, or not this format."""


@dataclass(frozen=True)
class ChunkEntry:
    index: int
    file: str
    size: int
    sha256: str
    first_pts: int
    last_pts: int
    frames: int


@dataclass(frozen=True)
class Package:
    """A checked package: its folder, the LR video, the generic base, the correction's shape and
    the chunks in time order."""

    folder: Path
    manifest: dict
    video: Path
    base: BaseModel
    base_sha256: str
    features: int
    blocks: int
    dtype: str
    chunks: tuple[ChunkEntry, ...]
    joint: bool = False  # one correction for all the chunks (every chunk entry names the same file)

    @property
    def master_size(self) -> tuple[int, int]:
        w, h = self.manifest["master_size"]
        return int(w), int(h)


def file_entry(path: Path) -> dict:
    """{"file", "size", "sha256"} of a file in the package."""
    data = path.read_bytes()
    return {"file": path.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def expected_tensors(factor: int, features: int, blocks: int) -> dict[str, tuple[int, ...]]:
    """The chunk file's tensor names and shapes for a correction of these hyper-parameters."""
    from ..models.correction import CorrectionNet

    net = CorrectionNet(factor, features, blocks)
    return {PREFIX + k: tuple(v.shape) for k, v in net.state_dict().items()}


def read_package(folder: str | Path) -> Package:
    """Read and check the package in ``folder``; raises :class:`PackageError`."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise PackageError(f"{folder}: not a delivery package (no such folder)")
    if not path.is_file():
        raise PackageError(f"{path}: missing (not a delivery package)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise PackageError(f"{path}: {path.stat().st_size} bytes, more than a manifest may hold")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise PackageError(f"{path}: not valid JSON ({e})") from None
    try:
        return _checked(folder, manifest)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        if isinstance(e, PackageError):
            raise
        raise PackageError(f"{path}: malformed ({type(e).__name__}: {e})") from None


def _checked(folder: Path, m: dict) -> Package:
    where = folder / MANIFEST
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise PackageError(f"{where}: not a {FORMAT} manifest")
    if m.get("version") != VERSION:
        raise PackageError(f"{where}: format version {m.get('version')!r}; this vsr-pipe reads version {VERSION}")
    arch = m["architecture"]
    base_spec = arch["base"]
    factor = int(m["factor"])
    if factor not in (2, 3, 4):
        raise PackageError(f"{where}: factor {factor}; packages restore by 2, 3 or 4")
    w, h = (int(v) for v in m["master_size"])
    lw, lh = (int(v) for v in m["lr_size"])
    if not (0 < lw * factor == w <= 16384 and 0 < lh * factor == h <= 16384):
        raise PackageError(f"{where}: sizes {lw}x{lh} -> {w}x{h} do not match factor {factor}")
    kind = str(base_spec["kind"])
    if kind not in ("espcn", "irn_up"):
        raise PackageError(f"{where}: base model '{kind}' is unknown (espcn or irn_up)")
    base = BaseModel(kind, _plain(str(base_spec["weights"]), where), factor, (h, w), (lh, lw))
    corr = arch["correction"]
    features, blocks = int(corr["features"]), int(corr["blocks"])
    dtype = str(arch.get("dtype", "float16"))
    if not (1 <= features <= 256 and 0 <= blocks <= 32) or int(corr["scale"]) != factor or dtype not in _DTYPES:
        raise PackageError(f"{where}: correction {corr} / dtype {dtype} out of range")
    video = _checked_file(folder, m["video"], 1 << 40)
    chunks = tuple(_chunk_entry(c) for c in m["chunks"])
    if not 1 <= len(chunks) <= MAX_CHUNKS:
        raise PackageError(f"{where}: {len(chunks)} chunks (1 to {MAX_CHUNKS})")
    for k, (a, b) in enumerate(zip(chunks, chunks[1:] + (None,))):
        if a.index != k or a.first_pts > a.last_pts or (b is not None and b.first_pts <= a.last_pts):
            raise PackageError(f"{where}: chunk {k}'s timestamps are out of order ({a.first_pts}..{a.last_pts})")
    joint = m.get("joint", False)
    if not isinstance(joint, bool):
        raise PackageError(f"{where}: 'joint' is {joint!r}, not true or false")
    want = expected_tensors(factor, features, blocks)
    for entry in _weights_files(chunks, joint, where):
        _check_tensors(_checked_file(folder, entry, MAX_WEIGHTS_BYTES), want, _DTYPES[dtype])
    return Package(folder, m, video, base, str(base_spec.get("sha256", "")), features, blocks, dtype, chunks, joint)


def _weights_files(chunks: tuple[ChunkEntry, ...], joint: bool, where: Path) -> list[dict]:
    """The distinct weights files the chunks name, each once: a joint package's chunks all name one
    file (listed alike), a per-chunk package's chunks each their own."""
    files: dict[str, dict] = {}
    for c in chunks:
        if c.file in files and not joint:
            raise PackageError(
                f"{where}: chunks {files[c.file]['index']} and {c.index} name the same {c.file} (not a joint package)"
            )
        if c.file in files and (files[c.file]["size"], files[c.file]["sha256"]) != (c.size, c.sha256.lower()):
            raise PackageError(
                f"{where}: chunk {c.index} lists {c.file} with another size or sha256 than chunk {files[c.file]['index']}"
            )
        files.setdefault(c.file, {"file": c.file, "size": c.size, "sha256": c.sha256.lower(), "index": c.index})
    if joint and len(files) != 1:
        raise PackageError(f"{where}: a joint package's chunks must all name one weights file ({len(files)} named)")
    return list(files.values())


def _plain(name: str, where: Path) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise PackageError(f"{where}: '{name}' is not a plain file name")
    return name


def _chunk_entry(c: dict) -> ChunkEntry:
    return ChunkEntry(
        int(c["index"]), str(c["file"]), int(c["size"]), str(c["sha256"]),
        int(c["first_pts"]), int(c["last_pts"]), int(c.get("frames", 0)),
    )  # fmt: skip


def _checked_file(folder: Path, entry: dict, limit: int) -> Path:
    """The file an entry names, checked: a plain name, present, its size and sha256 as listed."""
    name = _plain(str(entry["file"]), folder / MANIFEST)
    path = folder / name
    size, digest = int(entry["size"]), str(entry["sha256"]).lower()
    if size > limit:
        raise PackageError(f"{path}: the manifest lists {size} bytes, more than {limit} allowed")
    if not path.is_file():
        raise PackageError(f"{path}: missing")
    actual = path.stat().st_size
    if actual != size:
        raise PackageError(f"{path}: {actual} bytes, the manifest says {size} (truncated or replaced)")
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != digest:
        raise PackageError(f"{path}: sha256 does not match the manifest (damaged or tampered with)")
    return path


def _check_tensors(path: Path, want: dict[str, tuple[int, ...]], dtype: str) -> None:
    """The safetensors header lists exactly ``want``'s names and shapes, all of ``dtype``."""
    data = path.read_bytes()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
    except (struct.error, ValueError, UnicodeDecodeError):
        raise PackageError(f"{path}: not a safetensors file") from None
    if not isinstance(header, dict) or 8 + n > len(data):
        raise PackageError(f"{path}: not a safetensors file")
    header.pop("__metadata__", None)
    names = set(header)
    if names != set(want):
        extra, missing = sorted(names - set(want)), sorted(set(want) - names)
        raise PackageError(
            f"{path}: tensors do not match the architecture (unexpected {extra[:3]}, missing {missing[:3]})"
        )
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") != dtype or tuple(info.get("shape", ())) != want[name]:
            raise PackageError(
                f"{path}: tensor {name} is {info.get('dtype')} {info.get('shape')}; expected {dtype} {list(want[name])}"
            )
