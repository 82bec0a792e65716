"""An HLS variant's CODECS string (RFC 6381) is read from the stream's own parameter sets, the same
from MPEG-TS (Annex B) as from MP4 (avcC/hvcC)."""

from __future__ import annotations

import re
from fractions import Fraction

import av
import numpy as np
import pytest

from vsr_pipe.io.codec_string import codec_string


def _encode(path, codec: str, frames: int = 4) -> None:
    options = {"x265-params": "log-level=error"} if codec == "libx265" else {}
    with av.open(str(path), "w", format="mpegts" if path.suffix == ".ts" else None) as out:
        stream = out.add_stream(codec, rate=Fraction(24), options=options)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.mark.parametrize(
    "codec, pattern",
    [
        ("libx264", r"avc1\.64[0-9a-f]{2}[0-9a-f]{2}"),  # x264 medium: High profile (100 = 0x64)
        ("libx265", r"hvc1\.1\.6\.L\d+(\.[0-9A-F]+)*"),  # Main: idc 1, compatible with 1 and 2 (0x6)
    ],
)
def test_the_codec_string_names_profile_and_level_the_same_in_ts_and_mp4(tmp_path, codec, pattern):
    _encode(tmp_path / "a.ts", codec)
    _encode(tmp_path / "a.mp4", codec)
    from_ts, from_mp4 = codec_string(str(tmp_path / "a.ts")), codec_string(str(tmp_path / "a.mp4"))
    assert from_ts is not None and re.fullmatch(pattern, from_ts), from_ts
    assert from_mp4 == from_ts


def test_a_codec_hls_has_no_string_for_is_none(tmp_path):
    _encode(tmp_path / "a.mkv", "ffv1")
    assert codec_string(str(tmp_path / "a.mkv")) is None
