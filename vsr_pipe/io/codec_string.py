"""The RFC 6381 codec string of a coded video (``avc1.64001e``, ``hvc1.1.6.L63.90``): what an HLS
master playlist's ``CODECS`` attribute says of a variant, so a player skips what it cannot decode
before fetching it. Read from the sequence parameter set of the first keyframe; no decode."""

from __future__ import annotations

import re

from .keyframes import first_keyframe

_START = re.compile(b"\x00\x00\x01")


def codec_string(path: str) -> str | None:
    """``path``'s video as an RFC 6381 string: H.264 (``avc1``) or HEVC (``hvc1``); None for another
    codec or when its first keyframe carries no parameter set."""
    found = first_keyframe(path)
    if found is None:
        return None
    codec, extradata, data = found
    if extradata[:1] == b"\x01":  # avcC / hvcC (MP4, Matroska): the same fields, at fixed places
        record = {"h264": _avc_record, "hevc": _hevc_record}.get(codec)
        return record(extradata) if record else None
    if codec == "h264":
        return _avc(data)
    if codec == "hevc":
        return _hevc(data)
    return None


def _avc_record(record: bytes) -> str | None:
    return f"avc1.{record[1]:02x}{record[2]:02x}{record[3]:02x}" if len(record) >= 4 else None


def _hevc_record(record: bytes) -> str | None:
    # hvcC's bytes 1-12 are profile_tier_level's first 12 bytes, as the SPS's bytes 1-12 are.
    return _hevc_string(b"\x00" + record[1:13]) if len(record) >= 13 else None


def _nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (start codes removed)."""
    starts = [m.end() for m in _START.finditer(data)]
    return [data[a : b - 3] for a, b in zip(starts, [*starts[1:], len(data) + 3])]


def _unescaped(nal: bytes) -> bytes:
    """A NAL unit's payload without its emulation prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _avc(data: bytes) -> str | None:
    for nal in _nal_units(data):
        if nal and nal[0] & 0x1F == 7 and len(nal) >= 4:  # sequence parameter set
            profile, constraints, level = nal[1], nal[2], nal[3]
            return f"avc1.{profile:02x}{constraints:02x}{level:02x}"
    return None


def _hevc(data: bytes) -> str | None:
    """ISO/IEC 14496-15 E.3: profile space and idc, the compatibility flags bit-reversed in hex,
    tier and level, then the six constraint bytes in hex, trailing zero bytes left out."""
    for nal in _nal_units(data):
        if len(nal) >= 2 and (nal[0] >> 1) & 0x3F == 33:  # sequence parameter set
            return _hevc_string(_unescaped(nal[2:]))
    return None


def _hevc_string(sps: bytes) -> str | None:
    """The string from an HEVC SPS payload (after its NAL header): byte 0 the ids, bytes 1-12 the
    general profile, tier and level."""
    if len(sps) < 13:
        return None
    space, tier, profile = sps[1] >> 6, (sps[1] >> 5) & 1, sps[1] & 0x1F
    flags = int.from_bytes(sps[2:6], "big")
    reversed_flags = int(f"{flags:032b}"[::-1], 2)
    constraints = list(sps[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [
        "hvc1",
        f"{'' if space == 0 else 'ABC'[space - 1]}{profile}",
        f"{reversed_flags:x}",
        f"{'HL'[tier == 0]}{sps[12]}",
        *(f"{b:X}" for b in constraints),
    ]
    return ".".join(parts)
