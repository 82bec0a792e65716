"""Weights files and rescaling tags are input too: every malformed or hostile one is one typed error
(one line on the command line), never a crash, a huge allocation or garbage frames."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import av
import pytest

from tests.conftest import ROOT, run_cli
from tests.media import make_clip
from vsr_pipe.errors import WeightsError
from vsr_pipe.weights.store import load_model, shipped_path

# Real subprocesses and media per case: run by .ci/run (make test-slow), not in the fast default.
pytestmark = pytest.mark.slow


def _parts() -> tuple[bytes, dict, bytes]:
    good = shipped_path("espcn_y_x2").read_bytes()
    n = struct.unpack("<Q", good[:8])[0]
    return good, json.loads(good[8 : 8 + n]), good[8 + n :]


def _pack(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _hostile_weights() -> dict[str, bytes]:
    good, header, body = _parts()
    n = len(good) - len(body) - 8
    key = next(k for k in header if k != "__metadata__")
    cases = {f"header length {v}": struct.pack("<Q", v) + good[8:] for v in (0, 1, n - 1, n + 1, 2**31, 2**64 - 1)}
    for dtype in ("F16", "I64", "BOOL", "U8", "XYZ"):
        h = json.loads(json.dumps(header))
        h[key]["dtype"] = dtype
        cases[f"dtype {dtype}"] = _pack(h, body)
    for shape in ([1], [10**9, 10**9], [-1, 3], [0]):
        h = json.loads(json.dumps(header))
        h[key]["shape"] = shape
        cases[f"shape {shape}"] = _pack(h, body)
    h = json.loads(json.dumps(header))
    h[key]["data_offsets"] = [0, 2**62]
    cases["offsets past the end"] = _pack(h, body)
    for field, value in (("scale", "1000000"), ("num_feat", "100000,100000"), ("scale", "-2"), ("architecture", "x")):
        h = json.loads(json.dumps(header))
        h["__metadata__"][field] = value
        cases[f"header {field}={value}"] = _pack(h, body)
    start = header[key]["data_offsets"][0]
    for value in (float("nan"), float("inf"), float("-inf")):
        b = bytearray(body)
        b[start : start + 4] = struct.pack("<f", value)
        cases[f"value {value}"] = _pack(header, bytes(b))
    # A consistent file whose tensors are integers: loads, but is not weights.
    from safetensors.torch import load, save

    state = {k: v.to(__import__("torch").int32) for k, v in load(good).items()}
    cases["integer tensors"] = save(state, metadata=header["__metadata__"])
    return cases


HOSTILE = _hostile_weights()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_weights_are_one_weights_error(tmp_path, name):
    path = tmp_path / "w.safetensors"
    path.write_bytes(HOSTILE[name])
    with pytest.raises(WeightsError) as info:
        load_model(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_hostile_weights_on_the_command_line_are_one_line(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(HOSTILE["value nan"])
    (tmp_path / "set").mkdir()
    r = run_cli("eval", "images", tmp_path / "set", "--scale", "2", "--model", "espcn", "--weights", path)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(lines) == 1 and "NaN" in lines[0], r.stderr


TAGS = [
    "model=irn_y;weights=x;factor=2x2;hr=100000x100000;lr=96x64",
    "model=irn_y;factor=1e9x1e9;hr=99999999999999999999x1;lr=96x64",
    "model=irn_y;factor=0x0;hr=0x0;lr=0x0",
    "model=irn_y;hr=16384x16384;lr=96x64",
    "model=irn_y;hr=1x1;lr=96x64",
    "model=irn_y;hr=192x128;lr=999999x1",
    "model=irn_y;hr=-192x128;lr=96x64",
    ";;;===;;;",
    "model=irn_y;hr=" + "9" * 5000 + "x1;lr=96x64",
]


@pytest.mark.slow
@pytest.mark.parametrize("tag", TAGS, ids=[f"tag{i}" for i in range(len(TAGS))])
def test_absurd_rescaling_tags_end_in_a_file_or_one_line(tmp_path, tag):
    src = make_clip(tmp_path / "in.mkv", width=96, height=64, frames=4, audio=False)
    tagged = tmp_path / "tagged.mkv"
    with av.open(str(src.path)) as inp, av.open(str(tagged), "w") as out:
        video = out.add_stream_from_template(inp.streams.video[0])
        out.metadata["vsr_pipe_rescale"] = tag
        for packet in inp.demux(video=0):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
    out_path = tmp_path / "out.mkv"
    r = subprocess.run([sys.executable, "-m", "vsr_pipe", str(tagged), "-o", str(out_path), "-q"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) <= 1 and all(line.startswith("vsr-pipe:") for line in lines), r.stderr
    if r.returncode == 0:
        with av.open(str(out_path)) as c:
            frame = next(c.decode(video=0))
            assert frame.width <= 4 * 96 and frame.height <= 4 * 64
    else:
        assert r.returncode == 1
    assert not list(Path(tmp_path).glob(".*.partial-*"))
