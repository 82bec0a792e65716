"""The fuzz campaign's cases: the base clips, the mutations, and case ``i`` planned from ``i`` and the
seed alone (``random.Random(f"{seed}:{i}")`` draws the base, the kind and every byte changed), so a case
id replays byte for byte. Run by ``tests/fuzz/campaign.py``; ``tests/fuzz/test_fuzz_slice.py`` pins it.
"""

from __future__ import annotations

import os
import random
import re
import struct
from pathlib import Path

from tests.media import make_clip

KINDS = ("bitflip", "truncate", "header", "zero_range", "dup_range", "size_field")
# name -> (file name, make_clip keyword arguments); remuxed to MPEG-TS where the name says so.
BASES = {
    "mp4_h264_aac_sub": (
        "mp4_h264_aac_sub.mp4",
        dict(width=96, height=64, frames=12, audio=True, subtitles=True, crf=20),
    ),
    "mkv_flac_srt": ("mkv_flac_srt.mkv", dict(width=96, height=64, frames=12, audio=True, subtitles=True, crf=20)),
    "ts_h264_mp2": ("ts_h264_mp2.ts", dict(width=96, height=64, frames=12, audio=True, crf=20, color_range="full")),
    "webm_vp9": ("webm_vp9.webm", dict(width=96, height=64, frames=10, audio=False, codec="libvpx-vp9", crf=30)),
    "mkv_10bit": ("mkv_10bit.mkv", dict(width=96, height=64, frames=10, audio=True, pix_fmt="yuv420p10le", crf=20)),
    "mkv_odd_ffv1": ("mkv_odd_ffv1.mkv", dict(width=67, height=45, frames=8, audio=False)),
    "mov_422_bframes": (
        "mov_422.mov",
        dict(width=96, height=64, frames=12, audio=True, pix_fmt="yuv422p", crf=20, max_b_frames=2),
    ),
}
_SIZE_BOXES = (
    b"tkhd",
    b"stsz",
    b"stco",
    b"stsc",
    b"stts",
    b"mdhd",
    b"mvhd",
    b"elst",
    b"stsd",
    b"avcC",
    b"hdlr",
    b"trak",
    b"moov",
    b"mdat",
    b"ctts",
    b"stss",
)
_EBML_IDS = (
    b"\x18\x53\x80\x67",
    b"\x16\x54\xae\x6b",
    b"\x1f\x43\xb6\x75",
    b"\x15\x49\xa9\x66",
    b"\xae",
    b"\xe0",
    b"\xa3",
    b"\xa0",
    b"\xa1",
)


# --- base clips ------------------------------------------------------------------------------------


def make_bases(folder: Path) -> dict[str, bytes]:
    """Write (once) and read the base clips: name -> bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (file, kwargs) in BASES.items():
        path = folder / file
        if not path.exists():
            tmp = folder / f"tmp_{file}"
            if name.startswith("ts_"):
                mp4 = folder / f"tmp_{name}.mp4"
                make_clip(mp4, **kwargs)
                _remux(mp4, tmp, audio_codec="mp2")
                mp4.unlink()
            else:
                make_clip(tmp, **kwargs)
            os.replace(tmp, path)
        out[name] = path.read_bytes()
    return out


def _remux(src: Path, dst: Path, audio_codec: str) -> None:
    """Copy the video of ``src`` into ``dst`` (container by suffix), audio re-encoded to ``audio_codec``."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        v = out.add_stream_from_template(inp.streams.video[0])
        a_in = inp.streams.audio[0] if inp.streams.audio else None
        a_out = out.add_stream(audio_codec, rate=48000, layout="mono") if a_in else None
        for packet in inp.demux():
            if packet.stream is inp.streams.video[0] and packet.dts is not None:
                packet.stream = v
                out.mux(packet)
            elif a_in is not None and packet.stream is a_in:
                for frame in packet.decode():
                    frame.pts = None
                    out.mux(a_out.encode(frame))
        if a_out is not None:
            out.mux(a_out.encode(None))


# --- mutations -------------------------------------------------------------------------------------


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    """``data`` damaged in the way ``kind`` names, every choice drawn from ``rng``."""
    b = bytearray(data)
    n = len(b)
    if kind == "bitflip":
        for _ in range(rng.choice((1, 2, 4, 16, 64, 256))):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        b = b[: rng.randrange(0, n)] if rng.random() < 0.8 else b[: rng.randrange(n - min(n, 400), n)]
    elif kind == "header":  # the first kilobytes hold the container's headers (moov at the end for MP4)
        span = min(n, rng.choice((64, 512, 4096)))
        region = range(0, span) if rng.random() < 0.7 else range(max(0, n - 4096), n)
        for _ in range(rng.choice((1, 4, 16, 64))):
            b[rng.choice(region)] = rng.randrange(256)
    elif kind == "zero_range":
        start, length = rng.randrange(n), rng.choice((4, 64, 1024, 8192))
        b[start : start + length] = bytes(min(length, n - start))
    elif kind == "dup_range":
        start, length = rng.randrange(n), rng.choice((8, 188, 1024, 8192))
        piece = b[start : start + length]
        at = rng.randrange(n)
        b[at:at] = piece if rng.random() < 0.5 else b""
        if rng.random() < 0.5:  # or overwrite in place
            b[at : at + len(piece)] = piece
    elif kind == "size_field":
        b = _absurd_size(b, rng)
    else:
        raise ValueError(f"unknown mutation {kind}")
    return bytes(b)


_ABSURD32 = (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0, 1, 7, 0x00FFFFFF)


def _absurd_size(b: bytearray, rng: random.Random) -> bytearray:
    """A size or count field set to something absurd: MP4 box sizes and counts, tkhd width/height,
    EBML element sizes and Matroska pixel sizes, MPEG-TS section and PES lengths."""
    spots = []
    for box in _SIZE_BOXES:  # MP4/MOV: the 32-bit size before the type, or a field after it
        spots += [("box", m.start()) for m in re.finditer(re.escape(box), b) if m.start() >= 4]
    for eid in _EBML_IDS:  # Matroska/WebM: the size vint after the ID
        spots += [("ebml", m.end()) for m in re.finditer(re.escape(eid), b)][:200]
    for m in re.finditer(rb"\xb0|\xba", b[:4096]):  # PixelWidth/PixelHeight candidates
        if m.end() < len(b) and b[m.end()] in (0x81, 0x82):
            spots.append(("pixel", m.end()))
    spots += [("ts", i) for i in range(0, len(b), 188) if b[i] == 0x47][:400]
    if not spots:
        spots = [("raw", rng.randrange(max(1, len(b) - 4)))]
    what, at = rng.choice(spots)
    value = rng.choice(_ABSURD32)
    if what == "box":
        offset = rng.choice((-4, -4, 8, 12, 16, 20))  # size itself, or a count/entry after version+flags
        if rng.random() < 0.3 and b[at : at + 4] == b"tkhd":  # width/height, 16.16 fixed point, at the end
            size = struct.unpack(">I", b[at - 4 : at])[0]
            offset = size - 4 - rng.choice((8, 4))
        pos = at + offset
    elif what == "ebml":
        pos = at
        if rng.random() < 0.5:  # an 8-byte vint: an unknown-ish or enormous size
            b[pos : pos + 8] = bytes([0x01]) + rng.choice((b"\xff" * 7, b"\x7f" + b"\xff" * 6, b"\x00" * 6 + b"\x01"))
            return b
    elif what == "pixel":
        width = b[at] & 0x0F
        b[at + 1 : at + 1 + width] = rng.choice((b"\xff", b"\x00", b"\x7f")) * width
        return b
    elif what == "ts":
        pos = at + rng.choice((1, 3, 5, 6, 8, 10))  # pid/flags, section or PES length bytes
        b[pos : pos + 2] = struct.pack(">H", rng.choice((0xFFFF, 0x0FFF, 0, 1)))
        return b
    else:
        pos = at
    if 0 <= pos <= len(b) - 4:
        b[pos : pos + 4] = struct.pack(">I", value)
    return b


def plan_case(case: int, seed: int, bases: dict[str, bytes]) -> dict:
    """What case ``case`` runs: base, mutation kind, model, scale, and the mutated bytes."""
    rng = random.Random(f"{seed}:{case}")
    names = sorted(bases)
    base = names[case % len(names)]
    kind = KINDS[(case // len(names)) % len(KINDS)]
    model = "auto" if rng.random() < 0.1 else "bicubic"
    scale = "1.5" if rng.random() < 0.2 else "2"
    data = mutate(bases[base], kind, rng)
    return {"case": case, "base": base, "kind": kind, "model": model, "scale": scale, "data": data}
