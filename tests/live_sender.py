"""A live sender for the tests: streams a media file's packets to a URL at their own pace, as a
camera or an encoder on the network would (``python -m tests.live_sender SRC URL``)."""

from __future__ import annotations

import argparse
import time

import av


def send(src: str, url: str, fmt: str = "mpegts", listen: bool = False, realtime: bool = True) -> int:
    """Remux ``src`` to ``url``; returns the number of video packets sent."""
    if listen:  # a server the receiver connects to (PyAV opens the output's I/O without options)
        url += ("&" if "?" in url else "?") + "listen=1"
    sent = 0
    with av.open(src) as inp, av.open(url, "w", format=fmt) as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        start = time.monotonic()
        for packet in inp.demux(list(inp.streams)):
            if packet.dts is None or packet.stream.index not in mapping:
                continue
            if realtime and packet.pts is not None:
                due = start + float(packet.pts * packet.time_base)
                time.sleep(max(0.0, due - time.monotonic()))
            is_video = packet.stream.type == "video"
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
            sent += is_video
    return sent


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("src")
    parser.add_argument("url")
    parser.add_argument("--format", default="mpegts")
    parser.add_argument("--listen", action="store_true")
    parser.add_argument("--fast", action="store_true", help="as fast as it can, not at the stream's pace")
    args = parser.parse_args()
    print(send(args.src, args.url, args.format, args.listen, not args.fast), flush=True)
