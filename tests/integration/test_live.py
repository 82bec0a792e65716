"""The live filter over real sockets on the loopback: udp and tcp in and out, standard streams, HLS,
a sender killed and restarted, and a model too slow for the frame rate. Every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest

from tests.conftest import ROOT, run_cli
from tests.support.slow_model import slow_model

pytestmark = pytest.mark.slow

FPS = 25


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cli(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "vsr_pipe", *map(str, args)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def start_sender(src, url, *flags) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.live_sender", str(src), url, *flags],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_udp_listener(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until a socket is bound to ``port`` (the CLI has opened its UDP input)."""
    hex_port = f":{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"vsr-pipe ended early: {proc.stderr.read()}")
        if any(line.split()[1].endswith(hex_port) for line in Path("/proc/net/udp").read_text().splitlines()[1:]):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listened on udp port {port}")


def wait_for_bytes(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"vsr-pipe ended early: {proc.stderr.read()}")
        if path.exists() and path.stat().st_size > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing arrived in {path}")


class Receiver:
    """Collects what arrives on a loopback port (udp datagrams, or one tcp connection) into a file."""

    def __init__(self, path: Path, kind=socket.SOCK_STREAM):
        self.path, self.kind = path, kind
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(60)
        if kind == socket.SOCK_STREAM:
            self.sock.listen(1)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.sock, self.path.open("wb") as out:
            if self.kind == socket.SOCK_STREAM:
                conn = self.sock.accept()[0]
                conn.settimeout(60)
                with conn:
                    while data := conn.recv(1 << 16):
                        out.write(data)
            else:
                self.sock.settimeout(60)  # the first datagram may take the CLI's start-up
                while True:
                    try:
                        out.write(self.sock.recv(1 << 16))
                    except TimeoutError:
                        return
                    self.sock.settimeout(3)  # then silence ends it

    def join(self) -> None:
        self.thread.join(70)


def frames_of(path: Path) -> tuple[list[int], tuple[int, int], int]:
    """(video pts in order, (width, height), audio streams) of a received stream."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts = [f.pts for f in c.decode(v)]
        return pts, (v.codec_context.width, v.codec_context.height), len(c.streams.audio)


@pytest.fixture
def ts_clip(clip):
    return clip("cam.ts", width=160, height=96, frames=2 * FPS, fps=FPS, audio=True)


def test_udp_in_udp_out_keeps_every_frame_and_reports_latency(ts_clip, tmp_path):
    in_port = free_port(socket.SOCK_DGRAM)
    receiver = Receiver(tmp_path / "out.ts", socket.SOCK_DGRAM)
    cli = start_cli(
        f"udp://127.0.0.1:{in_port}", "--live", "--scale", "2", "-f", "mpegts", "-o",
        f"udp://127.0.0.1:{receiver.port}?pkt_size=1316", "--reconnect-timeout", "0", "--read-timeout", "2", "--json",
    )  # fmt: skip
    wait_for_udp_listener(in_port, cli)
    sender = start_sender(ts_clip.path, f"udp://127.0.0.1:{in_port}?pkt_size=1316")
    assert sender.wait(60) == 0
    out, err = cli.communicate(timeout=60)
    receiver.join()
    # The stream ends as a live one does, the sender gone: a normal end, said in a note.
    assert cli.returncode == 0 and "the stream ended" in err and "Traceback" not in err, err
    summary = json.loads(out)
    assert summary["lost"] is None
    # fps counts the frames over the time they took, not the read timeout waited after the last.
    # fps counts the frames over the time they took, not the read timeout waited after the last.
    assert summary["frames"] / summary["fps"] < summary["seconds"] - 1
    pts, size, audio = frames_of(tmp_path / "out.ts")
    assert summary["frames"] == len(pts) == ts_clip.frames
    assert size == (320, 192) and audio == 1
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    lat = summary["latency_ms"]
    assert lat["frames"] == ts_clip.frames and 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"] < 10_000


def test_tcp_sender_killed_and_restarted_gives_one_continuous_stream(ts_clip, tmp_path):
    port = free_port()
    receiver = Receiver(tmp_path / "out.mkv")
    first = start_sender(ts_clip.path, f"tcp://127.0.0.1:{port}", "--listen")
    cli = start_cli(
        f"tcp://127.0.0.1:{port}", "--live", "--scale", "2", "-f", "matroska", "-o",
        f"tcp://127.0.0.1:{receiver.port}", "--reconnect-timeout", "3", "--json",
    )  # fmt: skip
    wait_for_bytes(tmp_path / "out.mkv", cli)  # frames are flowing: the sender is mid-stream
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    time.sleep(0.5)  # the outage
    second = start_sender(ts_clip.path, f"tcp://127.0.0.1:{port}", "--listen")  # starts again at pts 0
    assert second.wait(60) == 0, second.stderr.read()
    out, err = cli.communicate(timeout=60)
    receiver.join()
    assert cli.returncode == 1 and "gave up" in err, err  # the sender never came back a third time
    summary = json.loads(out)
    assert summary["reconnects"] == 1
    pts, size, _ = frames_of(tmp_path / "out.mkv")
    assert len(pts) == summary["frames"] > ts_clip.frames  # part of the first run, all of the second
    step = 1000 // FPS  # Matroska's time base is 1 ms
    gaps = [b - a for a, b in zip(pts, pts[1:])]
    assert min(gaps) > 0, "timestamps went back"
    assert max(gaps) <= step + 2, f"a gap of {max(gaps)} ms at the seam"


def test_too_slow_a_model_falls_back_and_keeps_the_frame_rate(clip, tmp_path):
    src = clip("cam.mp4", width=160, height=96, frames=2 * FPS, fps=FPS, audio=True)
    r = subprocess.run(  # the command line with its model 120 ms slower per call (tests/support/slow_model.py)
        [sys.executable, "-m", "tests.support.slow_model", "120", str(src.path), "--live", "--realtime", "--scale",
         "2", "--max-latency", "300", "-o", str(tmp_path / "out.mkv"), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["frames"] == src.frames and summary["dropped"] == 0  # nothing dropped silently
    main, *cheaper = summary["paths"]  # the model first, then the light model (where it ships), bicubic
    assert main == "espcn x2" and sum(summary["paths"][p] for p in cheaper) > 0  # they took what it could not
    # At 120 ms a frame the model alone would need 6 s for these 2 s of video.
    assert summary["seconds"] < 2.0 + 2.5, summary
    pts, _, audio = frames_of(tmp_path / "out.mkv")
    assert len(pts) == src.frames and audio == 1


def test_standard_streams_in_and_out(ts_clip, tmp_path):
    data = Path(ts_clip.path).read_bytes()
    r = subprocess.run(
        [sys.executable, "-m", "vsr_pipe", "-", "--live", "--scale", "1.5", "-f", "mpegts", "-o", "-", "-q"],
        input=data, capture_output=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    (tmp_path / "out.ts").write_bytes(r.stdout)
    pts, size, audio = frames_of(tmp_path / "out.ts")
    assert len(pts) == ts_clip.frames and size == (240, 144) and audio == 1


def test_hls_playlist_plays_back_to_the_last_frame(ts_clip, tmp_path):
    playlist = tmp_path / "live" / "out.m3u8"
    playlist.parent.mkdir()
    r = run_cli(ts_clip.path, "--live", "--scale", "2", "-o", playlist, "-q", timeout=120)
    assert r.returncode == 0, r.stderr
    text = playlist.read_text()
    assert "#EXT-X-ENDLIST" in text and text.count("#EXTINF") >= 2
    pts, size, _ = frames_of(playlist)
    assert len(pts) == ts_clip.frames and size == (320, 192)


def test_protocols_this_build_lacks_are_one_line(tmp_path):
    r = run_cli("srt://127.0.0.1:9", "-o", tmp_path / "o.mp4")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "protocol 'srt' is not supported" in r.stderr
    assert "udp" in r.stderr


def test_ctrl_c_closes_a_live_hls_playlist_with_its_end_tag(ts_clip, tmp_path):
    playlist = tmp_path / "out.m3u8"
    cli = start_cli(ts_clip.path, "--live", "--realtime", "--scale", "2", "-o", playlist, "-q")
    wait_for_bytes(playlist, cli)  # the first segment is listed: mid-stream
    cli.send_signal(signal.SIGINT)
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == 130, err
    assert "#EXT-X-ENDLIST" in playlist.read_text()
    pts, _, _ = frames_of(playlist)
    assert 0 < len(pts) < ts_clip.frames and pts == sorted(pts)


def test_drop_is_a_stated_choice_and_every_frame_is_counted(clip, tmp_path):
    import vsr_pipe
    from vsr_pipe.config import LiveOptions

    src = clip("cam.mp4", width=160, height=96, frames=FPS, fps=FPS, audio=False)
    with slow_model(150):
        summary = vsr_pipe.upscale(
            str(src.path), str(tmp_path / "out.mkv"), scale=2, realtime=True,
            live=LiveOptions(drop=True, fallback=False),
        )  # fmt: skip
    assert summary.dropped > 0 and summary.frames + summary.dropped == src.frames
    assert summary.paths == {"espcn x2": summary.frames}
    pts, _, _ = frames_of(tmp_path / "out.mkv")
    assert len(pts) == summary.frames


def test_a_destination_that_refuses_or_goes_away_is_one_line(ts_clip, tmp_path):
    r = run_cli(ts_clip.path, "--live", "--scale", "2", "-f", "mpegts", "-o", f"tcp://127.0.0.1:{free_port()}")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "refused" in r.stderr.lower(), r.stderr
    reader = subprocess.Popen(["head", "-c", "1000"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    r = subprocess.run(
        [sys.executable, "-m", "vsr_pipe", str(ts_clip.path), "--live", "--scale", "2", "-f", "mpegts", "-o", "-"],
        stdout=reader.stdin, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    reader.stdin.close()
    reader.wait(10)
    assert r.returncode == 141 and r.stderr.strip() == "vsr-pipe: error: the output's reader went away (broken pipe)"
