"""Stopping mid-run leaves a playable file; memory stays flat whatever the video's length."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import av
import pytest

from tests.conftest import ROOT

PEAK_RSS = """
import json, resource, sys
import vsr_pipe
s = vsr_pipe.upscale(sys.argv[1], sys.argv[2], scale=2, chunk_frames=4)
print(json.dumps({"frames": s.frames, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak_memory(src, dst) -> dict:
    r = subprocess.run([sys.executable, "-c", PEAK_RSS, str(src), str(dst)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_length(clip):
    short = clip("short.mkv", width=96, height=64, frames=100, audio=True)
    long = clip("long.mkv", width=96, height=64, frames=1000, audio=True)
    a = peak_memory(short.path, short.path.with_name("short_out.mkv"))
    b = peak_memory(long.path, long.path.with_name("long_out.mkv"))
    assert (a["frames"], b["frames"]) == (100, 1000)
    # Bounded ring: ten times the frames may not cost more than a few MB more (allocator noise).
    assert b["peak_kb"] - a["peak_kb"] < 8_000, (a, b)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_finalises_a_playable_partial_output(clip, tmp_path, sig, code):
    src = clip("long.mkv", width=320, height=192, frames=600, audio=True)
    out = tmp_path / "out.mkv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsr_pipe", str(src.path), "--scale", "2", "-o", str(out), "--chunk", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        partial = None
        while time.time() < deadline and partial is None:  # wait until frames are being written
            partial = next(iter(tmp_path.glob(".out.partial-*")), None)
            time.sleep(0.2)
        time.sleep(2.0)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # never leave a stray process behind a failed test
            proc.kill()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "frames done so far" in stderr
    with av.open(str(out)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert 0 < frames < 600
    assert not list(tmp_path.glob(".out.partial-*"))


@pytest.mark.slow
def test_memory_stays_flat_over_a_piped_stream(tmp_path):
    """3 000 frames of 320x180 generated into a pipe, through the CLI, out to a pipe (the short form of
    ``bench/memory_soak.py``, whose hour-long run the README reports): RSS after warm-up stays within
    a few MiB."""
    subprocess.run(
        [sys.executable, "bench/memory_soak.py", "--seconds", "120", "--every", "0.5", "--codec", "rawvideo", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=1200,
    )  # fmt: skip
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["exit_code"] == 0, result["stderr_tail"]
    assert len(result["samples"]) > 10
    assert result["growth_mib"] < 4, {k: v for k, v in result.items() if k != "samples"}
