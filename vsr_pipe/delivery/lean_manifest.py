"""Manifest versions 5 and 6: a modulation package's manifest in as few bytes as its content allows.

Every byte of the manifest is fetched by every client, and at the low rates where a package pays
the LR is only a few kB: version 4's 1.3-1.5 kB manifest was up to 15 % of a rung. Version 5 says
the same things, keeping only what the package's shape does not imply:

- file names follow fixed patterns (``lr_%04d.ts`` per chunk, ``title.mod``, ``chunk_%04d.mod``);
- a file's digest is the first 128 bits of its SHA-256 in unpadded base64url (22 characters), still
  far beyond any collision or second preimage: a tampered or damaged file is caught as before;
- a shipped model is named with the first 64 bits of its SHA-256 (it is checked against the copy
  this vsr-pipe ships, not against an adversary);
- what modulation fixes (the corrected architecture, int8 codes, the correction's scale, the LR
  size as the master's over the factor, one set of codes per chunk) is left out.

Version 6 is version 5's JSON, stored as a zstd frame against the manifest dictionary vsr-pipe
ships (``dictionaries.py``): the keys, names and shapes every such manifest repeats cost next to
nothing, and what is left is mostly the files' digests (524 -> 228 bytes for three chunks).
Version 7 (the same frame) lists an HLS package's segments by size alone, with one digest for all of
them beside the playlist's: the SHA-256 of their SHA-256s in order, short form. A client restoring
a local package reads every segment before a frame moves, so one digest catches any changed byte as
surely as one a segment; a streaming client never hashed segments (FFmpeg reads them), and still
checks the playlist and each code file on its own. It saves a digest a chunk, and writes each
chunk's timestamps from the chunk before (a constant-rate title repeats one row): a 30 s title at
10 fps, 239 -> 183 bytes for three chunks, 583 -> 222 for fourteen. :func:`dump` writes it and
:func:`load` reads every form.

:func:`unpack` turns a version-5, 6 or 7 manifest into the version-4 shape the reader checks, so one
set of checks covers all; :func:`pack` is its inverse for the server. Neither trusts its input:
unpack raises ValueError/KeyError/TypeError on anything malformed (the reader reports it).
"""

from __future__ import annotations

import base64
import hashlib
import json

from . import dictionaries

VERSION = 7
VERSIONS = (5, 6, 7)  # the lean versions read
COMPRESSED = (6, 7)  # the versions stored as a zstd frame
SEGMENT_NAMES = "lr_%04d.ts"  # an HLS package's segments, one per chunk
TITLE_NAME = "title.mod"
CHUNK_NAMES = "chunk_%04d.mod"
SHORT_DIGEST_BYTES = 16
SHORT_MODEL_HEX = 16
# What an embedded package's manifest says of its video (version 5: just EMBEDDED): it cannot hold
# the hash of the file it is in.
EMBEDDED = "embedded"
EMBEDDED_VIDEO = {
    "embedded": True,
    "sha256": None,
    "checked": "nothing: the video is the Matroska file this manifest is attached to",
}


def short_digest(sha256_hex: str) -> str:
    """The first 128 bits of a SHA-256 (hex) as unpadded base64url: 22 characters."""
    raw = bytes.fromhex(sha256_hex)[:SHORT_DIGEST_BYTES]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segments_digest(sha256s: list[bytes]) -> str:
    """Version 7's one digest for an HLS package's segments: the short form of the SHA-256 of
    their SHA-256s (raw, in playlist order)."""
    return short_digest(hashlib.sha256(b"".join(sha256s)).hexdigest())


def digest_matches(digest: bytes, listed: str) -> bool:
    """Whether a file's SHA-256 ``digest`` is the one a manifest lists: 64 hex digits (versions
    1-4) or the short form of version 5."""
    listed = listed.strip()
    if len(listed) == 64:
        return digest.hex() == listed.lower()
    return len(listed) == 22 and short_digest(digest.hex()) == listed


def dump(m: dict) -> bytes:
    """The version-7 file of a version-4-shaped modulation manifest ``m``."""
    text = json.dumps(pack(m), separators=(",", ":"), allow_nan=False).encode()
    return dictionaries.compress(text, dictionaries.MANIFEST)


def load(data: bytes, limit: int):
    """A manifest file's JSON: plain (versions 1-5) or a version-6 or 7 zstd frame (at most
    ``limit`` bytes once decompressed). Raises ValueError saying what is wrong."""
    compressed = data.startswith(dictionaries.ZSTD_MAGIC)
    if compressed:
        try:
            data = dictionaries.decompress(data, dictionaries.MANIFEST, limit)
        except dictionaries.DictionaryFrameError as e:
            raise ValueError(f"a compressed manifest, {e}") from None
    try:
        value = json.loads(data.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not valid JSON ({e})") from None
    if compressed and (not isinstance(value, dict) or value.get("version") not in COMPRESSED):
        raise ValueError(f"a compressed manifest must be version {' or '.join(map(str, COMPRESSED))}")
    return value


def pack(m: dict) -> dict:
    """The lean (version-7) fields of a version-4-shaped modulation manifest ``m`` (as the server
    builds it); :func:`dump` stores them."""
    arch = m["architecture"]
    if m["weights_format"] != "modulation" or m["joint"] or arch["dtype"] != "int8":
        raise ValueError("manifest versions 5 and 6 are for modulation packages")
    out = {
        "format": m["format"], "version": VERSION, "factor": m["factor"], "master_size": m["master_size"],
        "time_base": m["time_base"], "frame_rate": m["frame_rate"], "lr_offset": m["lr_offset"],
    }  # fmt: skip
    if m["layout"] != "hls":
        out["layout"] = m["layout"]
    if m["down"] != "bicubic":
        out["down"] = m["down"]
    base, start, corr = arch["base"], arch["start"], arch["correction"]
    out["base"] = [base["kind"], base["weights"], base["sha256"][:SHORT_MODEL_HEX]]
    out["start"] = [start["weights"], start["sha256"][:SHORT_MODEL_HEX]]
    out["correction"] = [corr["features"], corr["blocks"]]
    video = m["video"]
    if m["layout"] == "embed":
        out["video"] = EMBEDDED
    else:
        out["video"] = [video["file"], video["size"], short_digest(video["sha256"])]
    if m["layout"] == "hls":
        for k, s in enumerate(video["segments"]):
            _named(s["file"], SEGMENT_NAMES % k)
        out["video"].append(segments_digest([bytes.fromhex(s["sha256"]) for s in video["segments"]]))
        out["segments"] = [s["size"] for s in video["segments"]]
    if m.get("title"):
        _named(m["title"]["file"], TITLE_NAME)
        out["title"] = [m["title"]["size"], short_digest(m["title"]["sha256"])]
    chunks, end = [], 0
    for k, c in enumerate(m["chunks"]):
        # Version 7: a chunk's timestamps from the one before it (its start after the last chunk's
        # end, its span), so a constant-rate title repeats one row, which costs next to nothing.
        row = [c["first_pts"] - end, c["last_pts"] - c["first_pts"], c["frames"]]
        end = c["last_pts"]
        if c.get("file"):
            _named(c["file"], CHUNK_NAMES % k)
            row += [c["size"], short_digest(c["sha256"])]
        chunks.append(row)
    out["chunks"] = chunks
    return out


def unpack(v: dict) -> dict:
    """The version-4 shape of a version-5, 6 or 7 manifest ``v`` (its "version" stays as it was).
    Version 7's segments have no digest each ("sha256": None) and the video entry one for all of
    them ("segments_sha256")."""
    factor, (w, h) = int(v["factor"]), v["master_size"]
    layout = v.get("layout", "hls")
    kind, base_name, base_sha = v["base"]
    start_name, start_sha = v["start"]
    if not all(isinstance(s, str) and len(s) >= SHORT_MODEL_HEX for s in (base_sha, start_sha)):
        raise ValueError("a shipped model's sha256 needs at least 16 hex digits")
    features, blocks = v["correction"]
    m = {
        "format": v["format"], "version": v["version"], "factor": factor, "down": v.get("down", "bicubic"),
        "master_size": [w, h], "lr_size": [int(w) // factor, int(h) // factor],
        "time_base": v["time_base"], "frame_rate": v["frame_rate"], "lr_offset": v["lr_offset"],
        "layout": layout, "joint": False, "weights_format": "modulation",
        "architecture": {
            "model": "corrected",
            "base": {"kind": kind, "weights": base_name, "sha256": base_sha},
            "correction": {"scale": factor, "features": features, "blocks": blocks},
            "dtype": "int8",
            "start": {"weights": start_name, "sha256": start_sha},
        },
    }  # fmt: skip
    if layout == "embed":
        if v["video"] != EMBEDDED:
            raise ValueError(f"an embedded package's video must be {EMBEDDED!r}")
        m["video"] = dict(EMBEDDED_VIDEO)
    elif layout == "hls" and v["version"] >= 7:
        name, size, digest, segments = v["video"]
        m["video"] = {"file": name, "size": size, "sha256": digest, "segments_sha256": _digest(segments, name)}
    else:
        name, size, digest = v["video"]
        m["video"] = {"file": name, "size": size, "sha256": digest}
    if layout == "hls" and v["version"] >= 7:
        m["video"]["segments"] = [_sized(SEGMENT_NAMES % k, s) for k, s in enumerate(v["segments"])]
    elif layout == "hls":
        m["video"]["segments"] = [_entry(SEGMENT_NAMES % k, *s) for k, s in enumerate(v["segments"])]
    if v.get("title") is not None:
        m["title"] = _entry(TITLE_NAME, *v["title"])
    chunks, end = [], 0
    for k, row in enumerate(v["chunks"]):
        first, last, frames, *weights = row
        if v["version"] >= 7:  # a gap after the chunk before and a span (pack)
            if not all(isinstance(n, int) and not isinstance(n, bool) for n in (first, last)):
                raise TypeError(f"chunk {k}'s timestamps are not whole numbers")
            first, last = end + first, end + first + last
            end = last
        c = {"first_pts": first, "last_pts": last, "frames": frames}
        if weights:
            c.update(_entry(CHUNK_NAMES % k, *weights))
        chunks.append(c)
    m["chunks"] = chunks
    return m


def _entry(name: str, size: int, digest: str) -> dict:
    return {"file": name, "size": size, "sha256": _digest(digest, name)}


def _sized(name: str, size: int) -> dict:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"{name}'s size is not a whole number")
    return {"file": name, "size": size, "sha256": None}


def _digest(digest, name: str) -> str:
    if not isinstance(digest, str):
        raise TypeError(f"{name}'s digest is not a string")
    return digest


def _named(name: str, want: str) -> None:
    if name != want:
        raise ValueError(f"manifest versions 5 and 6 imply the name {want}, not {name}")
