"""The delivery package on disk: ``manifest.json`` written by the server, read back and checked
by the client before anything in it is used. Its layout is a folder (``lr.mp4`` beside the
weights), an HLS folder (``lr.m3u8`` whose segments are the chunks, each hashed) or one Matroska
file (``embed``: the files are its attachments, and the video, which holds them, is not hashed).

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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import VsrPipeError
from .fit import PREFIX, BaseModel
from .lean_manifest import EMBEDDED_VIDEO, digest_matches, segments_digest, unpack
from .lean_manifest import VERSIONS as LEAN_VERSIONS
from .lean_manifest import load as load_manifest

FORMAT = "vsr-pipe-delivery"
# 4: a chunk entry says only what is not implied (no "index": its place; no "segment": the HLS
# playlist's segment at its place; no "file" where it ships no weights); 3: "weights_format"
# (modulation codes); 2: "layout" and "joint"; 1 to 3 still read. 5 (lean_manifest.py): a
# modulation package's manifest with only what its shape does not imply, read as a 4; 6: the same,
# zstd-compressed against a shipped dictionary; 7: an HLS package's segments under one digest.
VERSION = 4
READS = (1, 2, 3, 4, *LEAN_VERSIONS)
WEIGHTS_FORMATS = ("correction", "modulation")
MAX_COMPACT_BYTES = 1 << 20  # a compact weights file (zstd) in the package
LAYOUTS = ("folder", "hls", "embed")
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 8 << 20
MAX_WEIGHTS_BYTES = 64 << 20
MAX_PLAYLIST_BYTES = 1 << 20
MAX_VIDEO_BYTES = 1 << 40
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
    segment: str | None = None  # hls: the playlist's segment that holds exactly this chunk


@dataclass(frozen=True)
class Place:
    """Where a package's files are (``folder``) and how messages name them: as files of that
    folder, as attachments of the Matroska file ``container`` they were extracted from, or as the
    files under the URL ``url`` (ending in /) they were fetched from."""

    folder: Path
    container: Path | None = None
    url: str | None = None

    def show(self, name: str) -> str:
        if self.url:
            return self.url + name
        return f"{self.container}: attachment {name}" if self.container else str(self.folder / name)


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
    layout: str = "folder"  # folder (lr.mp4), hls (lr.m3u8 and its segments) or embed (one .mkv)
    # "modulation": codes on the shipped trained correction ``start`` (delivery/compact.py); a chunk
    # entry with no file keeps the codes in effect. ``chunk_codes``: the codes in effect per chunk.
    weights_format: str = "correction"
    start: str = ""
    start_sha256: str = ""
    chunk_codes: tuple = ()

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
    if not folder.is_dir():
        raise PackageError(f"{folder}: not a delivery package (no such folder)")
    return read_manifest(Place(folder))


def read_manifest(place: Place, embedded_in: Path | None = None, streamed: bool = False) -> Package:
    """Check the package whose manifest and files are in ``place.folder``; ``embedded_in``: the
    Matroska file an embedded package's files were extracted from (its video). ``streamed``: the
    manifest alone, its files still to come (the caller checks each with :func:`check_file` and
    :func:`check_weights` as it arrives); the video is then the path its name would have."""
    path, where = place.folder / MANIFEST, place.show(MANIFEST)
    if not path.is_file():
        raise PackageError(f"{where}: missing (not a delivery package)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise PackageError(f"{where}: {path.stat().st_size} bytes, more than a manifest may hold")
    try:
        manifest = load_manifest(path.read_bytes(), MAX_MANIFEST_BYTES)
    except ValueError as e:
        raise PackageError(f"{where}: {e}") from None
    try:
        return _checked(place, expanded(manifest), embedded_in, streamed)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        if isinstance(e, PackageError):
            raise
        raise PackageError(f"{where}: malformed ({type(e).__name__}: {e})") from None


def expanded(manifest):
    """A manifest as the checks read it: a version-5, 6 or 7 one in the version-4 shape it stands for."""
    return unpack(manifest) if isinstance(manifest, dict) and manifest.get("version") in LEAN_VERSIONS else manifest


def playlist_segments(text: str) -> list[str]:
    """The segment URIs of an HLS media playlist, in order. Raises ValueError for a tag that names
    another file (keys, init sections, other playlists): a package's playlist lists segments only."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an HLS playlist")
    for line in lines:
        if line.startswith("#") and "URI=" in line.upper():
            raise ValueError(f"it names another file ({line[:60]})")
    return [line for line in lines if not line.startswith("#")]


def _checked(place: Place, m: dict, embedded_in: Path | None, streamed: bool = False) -> Package:
    where = place.show(MANIFEST)
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise PackageError(f"{where}: not a {FORMAT} manifest")
    if m.get("version") not in READS:
        raise PackageError(
            f"{where}: format version {m.get('version')!r}; this vsr-pipe reads versions 1 to {max(READS)}"
        )
    layout = m.get("layout", "folder") if m["version"] >= 2 else "folder"
    if layout not in LAYOUTS:
        raise PackageError(f"{where}: layout {layout!r} is unknown (folder, hls or embed)")
    if layout == "embed" and embedded_in is None:
        raise PackageError(f"{where}: an embedded package's manifest, outside its Matroska file")
    if layout != "embed" and embedded_in is not None:
        raise PackageError(f"{where}: layout {layout!r}, not an embedded package's")
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
    base = BaseModel(kind, plain_name(str(base_spec["weights"]), where), factor, (h, w), (lh, lw))
    corr = arch["correction"]
    features, blocks = int(corr["features"]), int(corr["blocks"])
    dtype = str(arch.get("dtype", "float16"))
    dtypes = ("int8",) if m["version"] >= 3 and m.get("weights_format") == "modulation" else tuple(_DTYPES)
    if not (1 <= features <= 256 and 0 <= blocks <= 32) or int(corr["scale"]) != factor or dtype not in dtypes:
        raise PackageError(f"{where}: correction {corr} / dtype {dtype} out of range")
    implied = m["version"] >= 4
    segments = [str(s["file"]) for s in m["video"]["segments"]] if layout == "hls" else []
    if implied and layout == "hls" and len(segments) != len(m["chunks"]):
        raise PackageError(f"{where}: {len(m['chunks'])} chunks for {len(segments)} segments (one each)")
    chunks = tuple(_chunk_entry(c, k, segments, implied) for k, c in enumerate(m["chunks"]))
    if not 1 <= len(chunks) <= MAX_CHUNKS:
        raise PackageError(f"{where}: {len(chunks)} chunks (1 to {MAX_CHUNKS})")
    if streamed:
        if layout == "embed":
            raise PackageError(f"{where}: an embedded package's manifest; restore its .mkv file instead")
        video = place.folder / plain_name(str(m["video"]["file"]), where)
        if layout == "hls" and [c.segment for c in chunks] != segments:
            raise PackageError(f"{where}: the chunks do not name the playlist's segments one each, in order")
    elif layout == "hls":
        video = _checked_playlist(place, m["video"], chunks)
    elif layout == "embed":
        if m["video"] != EMBEDDED_VIDEO:
            raise PackageError(f"{where}: an embedded package's video entry must be {json.dumps(EMBEDDED_VIDEO)}")
        video = embedded_in
    else:
        video = check_file(place, m["video"], MAX_VIDEO_BYTES)
    for k, (a, b) in enumerate(zip(chunks, chunks[1:] + (None,))):
        if a.index != k or a.first_pts > a.last_pts or (b is not None and b.first_pts <= a.last_pts):
            raise PackageError(f"{where}: chunk {k}'s timestamps are out of order ({a.first_pts}..{a.last_pts})")
    joint = m.get("joint", False)
    if not isinstance(joint, bool):
        raise PackageError(f"{where}: 'joint' is {joint!r}, not true or false")
    base_sha = str(base_spec.get("sha256", ""))
    pkg = Package(place.folder, m, video, base, base_sha, features, blocks, dtype, chunks, joint, layout)
    if m["version"] >= 3 and m.get("weights_format", "correction") not in WEIGHTS_FORMATS:
        raise PackageError(f"{where}: weights_format {m.get('weights_format')!r} is unknown {WEIGHTS_FORMATS}")
    if m["version"] >= 3 and m.get("weights_format", "correction") == "modulation":
        return _modulation_package(place, m, pkg, streamed)
    files = _weights_files(chunks, joint, where)
    for entry in files if not streamed else ():
        check_weights(place, entry, pkg)
    return pkg


def _modulation_package(place: Place, m: dict, pkg: Package, streamed: bool) -> Package:
    """A package of modulation codes: the trained correction they modulate (a shipped weights name
    and its sha256), and unless ``streamed`` every code file checked and the codes per chunk."""
    where = place.show(MANIFEST)
    start = m["architecture"]["start"]
    pkg = replace(
        pkg, weights_format="modulation", start=plain_name(str(start["weights"]), where),
        start_sha256=str(start["sha256"]), joint=False,
    )  # fmt: skip
    names = [c.file for c in pkg.chunks if c.file]
    if len(set(names)) != len(names):
        raise PackageError(f"{where}: two chunks name the same weights file")
    return (
        pkg
        if streamed
        else replace(pkg, chunk_codes=chunk_codes(pkg, lambda e: check_file(place, e, MAX_COMPACT_BYTES), place.show))
    )


def chunk_codes(pkg: Package, checked: Callable[[dict], Path], show: Callable[[str], str]) -> tuple:
    """The modulation codes in effect in each chunk: the title's file (absolute) and each chunk's
    (a delta), read through ``checked`` (entry -> its checked local file) and decoded strictly."""
    import numpy as np

    from ..models.correction import CorrectionNet
    from ..models.modulation import code_shapes
    from .compact import CompactWeightsError, decode

    shapes = code_shapes(CorrectionNet(pkg.base.factor, pkg.features, pkg.blocks))
    title_codes = {k: np.zeros(v, np.int8) for k, v in shapes.items()}
    title = pkg.manifest.get("title")
    out = []
    try:
        if title is not None:
            title_codes = decode(checked(title).read_bytes(), shapes, None, show(str(title["file"])))
            if _kind(checked(title)) != "absolute":
                raise PackageError(f"{show(str(title['file']))}: a title's codes must be absolute, not a delta")
        current = title_codes
        for c in pkg.chunks:  # a chunk's file is a delta from the codes before it; no file: the title's
            entry = {"file": c.file, "size": c.size, "sha256": c.sha256}
            current = decode(checked(entry).read_bytes(), shapes, current, show(c.file)) if c.file else title_codes
            out.append(current)
    except CompactWeightsError as e:
        raise PackageError(str(e)) from None
    return tuple(out)


def check_weights(place: Place, entry: dict, pkg: Package) -> Path:
    """The weights file a chunk entry (``{"file", "size", "sha256"}``) names, checked: its size and
    sha256 as listed, and a safetensors header of exactly the correction's tensors, shapes and dtype."""
    path = check_file(place, entry, MAX_WEIGHTS_BYTES)
    want = expected_tensors(pkg.base.factor, pkg.features, pkg.blocks)
    _check_tensors(path, place.show(path.name), want, _DTYPES[pkg.dtype])
    return path


def _checked_playlist(place: Place, entry: dict, chunks: tuple[ChunkEntry, ...]) -> Path:
    """An HLS package's playlist, checked: its file and every segment's (size, sha256), and that it
    lists exactly the manifest's segments, one per chunk, in order."""
    playlist = check_file(place, entry, MAX_PLAYLIST_BYTES)
    if entry.get("segments_sha256") is None:
        segments = [check_file(place, s, MAX_VIDEO_BYTES).name for s in entry["segments"]]
    else:  # version 7: each segment's size, then one digest for all (lean_manifest.segments_digest)
        sized = [_sized_file(place, s, MAX_VIDEO_BYTES) for s in entry["segments"]]
        segments = [path.name for path, _ in sized]
        if segments_digest([d for _, d in sized]) != str(entry["segments_sha256"]).strip():
            raise PackageError(
                f"{place.show(segments[0])}..{segments[-1]}: the segments' sha256 does not match the manifest "
                "(one of them is damaged or tampered with)"
            )
    try:
        listed = playlist_segments(playlist.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise PackageError(f"{place.show(playlist.name)}: {e}") from None
    if listed != segments:
        raise PackageError(f"{place.show(playlist.name)}: its segments are not the manifest's ({listed[:3]}...)")
    if [c.segment for c in chunks] != segments:
        raise PackageError(f"{place.show(MANIFEST)}: the chunks do not name the playlist's segments one each, in order")
    return playlist


def _weights_files(chunks: tuple[ChunkEntry, ...], joint: bool, where: str) -> list[dict]:
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


def plain_name(name: str, where: str | Path) -> str:
    """``name`` if it is a plain file name (no folder, not hidden); else a PackageError at ``where``."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise PackageError(f"{where}: '{name}' is not a plain file name")
    return name


def _kind(path: Path) -> str:
    from .compact import kind_of

    return kind_of(path.read_bytes())


def _chunk_entry(c: dict, k: int, segments: list[str], implied: bool) -> ChunkEntry:
    """Chunk ``k``'s entry; ``implied`` (version 4): its index and HLS segment are its place's."""
    if implied:
        c = {"index": k, "file": None, **({"segment": segments[k]} if segments else {}), **c}
    if c["file"] is None:  # modulation: no weights for this chunk, the codes in effect carry on
        c = {**c, "file": "", "size": 0, "sha256": ""}
    return ChunkEntry(
        int(c["index"]), str(c["file"]), int(c["size"]), str(c["sha256"]),
        int(c["first_pts"]), int(c["last_pts"]), int(c.get("frames", 0)),
        str(c["segment"]) if c.get("segment") is not None else None,
    )  # fmt: skip


def check_file(place: Place, entry: dict, limit: int) -> Path:
    """The file an entry names, checked: a plain name, present, its size and sha256 as listed."""
    path, digest = _sized_file(place, entry, limit)
    if not digest_matches(digest, str(entry["sha256"])):
        raise PackageError(f"{place.show(path.name)}: sha256 does not match the manifest (damaged or tampered with)")
    return path


def _sized_file(place: Place, entry: dict, limit: int) -> tuple[Path, bytes]:
    """The file an entry names, a plain name, present and of the size listed; and its sha256."""
    name = plain_name(str(entry["file"]), place.show(MANIFEST))
    path, shown = place.folder / name, place.show(name)
    size = int(entry["size"])
    if size > limit:
        raise PackageError(f"{shown}: the manifest lists {size} bytes, more than {limit} allowed")
    if not path.is_file():
        raise PackageError(f"{shown}: missing")
    actual = path.stat().st_size
    if actual != size:
        raise PackageError(f"{shown}: {actual} bytes, the manifest says {size} (truncated or replaced)")
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return path, h.digest()


def _check_tensors(path: Path, shown: str, want: dict[str, tuple[int, ...]], dtype: str) -> None:
    """The safetensors header lists exactly ``want``'s names and shapes, all of ``dtype``."""
    data = path.read_bytes()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
    except (struct.error, ValueError, UnicodeDecodeError):
        raise PackageError(f"{shown}: not a safetensors file") from None
    if not isinstance(header, dict) or 8 + n > len(data):
        raise PackageError(f"{shown}: not a safetensors file")
    header.pop("__metadata__", None)
    names = set(header)
    if names != set(want):
        extra, missing = sorted(names - set(want)), sorted(set(want) - names)
        raise PackageError(
            f"{shown}: tensors do not match the architecture (unexpected {extra[:3]}, missing {missing[:3]})"
        )
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") != dtype or tuple(info.get("shape", ())) != want[name]:
            raise PackageError(
                f"{shown}: tensor {name} is {info.get('dtype')} {info.get('shape')}; expected {dtype} {list(want[name])}"
            )
