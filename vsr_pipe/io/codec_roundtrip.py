"""Frames through a real encoder and back, in memory: what a client would decode, and what it cost.

Used where bytes and quality must be measured on the same encode (rate–distortion benches) and where
a model is trained on codec-decoded input. The byte count is the video packets' payload only — what a
stream carries for the picture, no container overhead — so every side of a comparison counts alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from .encoders import X264_INFO, x265_params

DECODERS = {"libx264": "h264", "libx265": "hevc"}


@dataclass(frozen=True)
class CodedClip:
    """``bytes`` of video packets; ``planes``: per frame the decoded (Y, U, V) planes, uint8."""

    bytes: int
    planes: list[tuple[np.ndarray, np.ndarray, np.ndarray]]

    @property
    def luma(self) -> list[np.ndarray]:
        return [p[0] for p in self.planes]


def gray_frames(luma: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Y planes (even sizes) with neutral 4:2:0 chroma, for coding luma alone."""
    out = []
    for y in luma:
        c = np.full((y.shape[0] // 2, y.shape[1] // 2), 128, np.uint8)
        out.append((np.ascontiguousarray(y, dtype=np.uint8), c, c))
    return out


def code_frames(
    frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    codec: str = "libx264",
    crf: float = 23,
    preset: str = "medium",
    rate: Fraction = Fraction(25),
    keyframes: frozenset[int] = frozenset(),
) -> CodedClip:
    """Encode 4:2:0 ``frames`` with ``codec`` at ``crf`` and decode them again; ``keyframes`` are frame
    indices forced to be IDR frames (a delivery chunk's first frame)."""
    h, w = frames[0][0].shape
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base, enc.framerate = 1 / rate, rate
    enc.options = {"crf": f"{crf:g}", "preset": preset, **_quiet(codec, keyframes)}
    packets: list[av.Packet] = []
    for i, planes in enumerate(frames):
        frame = av.VideoFrame(w, h, "yuv420p")
        for dst, src in zip(frame.planes, planes):
            view = np.frombuffer(dst, np.uint8).reshape(dst.height, dst.line_size)
            view[:, : src.shape[1]] = src
        frame.pts = i
        if i in keyframes:
            frame.pict_type = av.video.frame.PictureType.I
        packets += enc.encode(frame)
    packets += enc.encode(None)
    size = sum(p.size for p in packets) - (_info_sei_bytes(bytes(packets[0])) if packets else 0)
    return CodedClip(size, _decode(packets, codec, enc.extradata, w))


def _info_sei_bytes(first: bytes) -> int:
    """Bytes of x264's version SEI in an Annex B first packet (0 if none): the pipeline's outputs
    leave it out (``AvSink``), so the in-memory counts do too."""
    at = first.find(X264_INFO)
    start = first.rfind(b"\x00\x00\x01", 0, at) if at >= 0 else -1
    if start < 0:
        return 0
    end = first.find(b"\x00\x00\x01", at)
    end = len(first) if end < 0 else end - (first[end - 1] == 0)  # a 4-byte start code's leading zero
    return end - (start - (start > 0 and first[start - 1] == 0))


def _quiet(codec: str, keyframes: frozenset[int] = frozenset()) -> dict[str, str]:
    return {"x265-params": x265_params(forced_keyframes=bool(keyframes))} if codec == "libx265" else {}


def _decode(packets, codec: str, extradata, width: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    dec = av.CodecContext.create(DECODERS.get(codec, codec), "r")
    if extradata:
        dec.extradata = extradata
    frames = []
    for packet in [*packets, None]:
        for f in dec.decode(packet):
            frames.append(tuple(_plane(p, width >> (i > 0)) for i, p in enumerate(f.planes)))
    return frames


def _plane(plane, width: int) -> np.ndarray:
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :width].copy()
