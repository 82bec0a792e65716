"""Inputs and outputs by URL: anything FFmpeg opens, here real TCP sockets on the loopback."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import av

import vsr_pipe
from vsr_pipe.config import EncodeOptions


def _listener() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(30)  # the test ends by itself if nobody connects
    return server


def serve_bytes(data: bytes) -> tuple[str, threading.Thread]:
    """A one-shot TCP server that sends ``data`` to the first client and hangs up."""
    server = _listener()

    def send() -> None:
        with server, server.accept()[0] as conn:
            conn.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return f"tcp://127.0.0.1:{server.getsockname()[1]}", thread


def receive_bytes(into: Path) -> tuple[str, threading.Thread]:
    """A one-shot TCP server that writes what the first client sends into ``into``."""
    server = _listener()

    def receive() -> None:
        with server, server.accept()[0] as conn, into.open("wb") as out:
            conn.settimeout(30)
            while chunk := conn.recv(1 << 16):
                out.write(chunk)

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    return f"tcp://127.0.0.1:{server.getsockname()[1]}", thread


def test_tcp_in_and_tcp_out_keep_every_frame(clip, tmp_path):
    src = clip("in.mkv", frames=6, audio=True)
    url_in, sender = serve_bytes(Path(src.path).read_bytes())
    received = tmp_path / "received.mkv"
    url_out, receiver = receive_bytes(received)
    summary = vsr_pipe.upscale(
        url_in, url_out, scale=2, model="bicubic", encode=EncodeOptions(container_format="matroska")
    )
    sender.join(10)
    receiver.join(10)
    assert summary.frames == 6 and summary.input == url_in
    with av.open(str(received)) as out:
        video = out.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (src.width * 2, src.height * 2)
        assert len(out.streams.audio) == 1
        assert sum(1 for _ in out.decode(video=0)) == 6
