"""A network input that survives stalls and disconnects: when the stream ends or no data comes for
the read timeout, it is reopened until the reconnect timeout passes. Timestamps carry on from
where they were (monotonic, no jump back, no gap larger than the outage), and frames keep the
first connection's layout, so the pipeline and the output never see the seam."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from ..config import SourceOptions
from ..errors import NotAVideo
from .base import End, Frame, Packet, Source, SourceItem, StreamFacts
from .decode import AvSource, SourceSpec, is_url

RETRY_INTERVAL_S = 0.2


def open_source(spec: SourceSpec, options: SourceOptions = SourceOptions(), low_delay: bool = False) -> Source:
    """Open an input: a path, "-" (standard input), a binary file object or a URL. A URL gets the
    read timeout (a stalled network input ends instead of hanging) and, with a reconnect timeout,
    is reopened after an outage."""
    opts, trim = options.options, (options.start_s, options.duration_s)
    if low_delay:  # start after probing a second of stream, not five
        opts = (("analyzeduration", "1000000"), *opts)
    if not is_url(spec):
        return AvSource(spec, opts, options.format, low_delay=low_delay, trim=trim)
    wait = max(options.read_timeout_s, options.reconnect_timeout_s)

    def connect(layout=None, first_wait=wait) -> AvSource:
        timeout = (first_wait, options.read_timeout_s)
        return AvSource(spec, opts, options.format, timeout=timeout, layout=layout, low_delay=low_delay, trim=trim)

    if options.reconnect_timeout_s <= 0:
        return connect()
    # Each reconnection attempt waits a little; the reconnect timeout bounds them all.
    return ReconnectingSource(
        lambda layout: connect(layout, wait if layout is None else 1.0), options.reconnect_timeout_s, str(spec)
    )


class ReconnectingSource:
    """A :class:`~vsr_pipe.io.base.Source` over a URL that reopens it after an outage.

    ``open_source(layout)`` opens the URL once (an :class:`AvSource`, its frames converted to
    ``layout`` when given). ``reconnects`` counts the outages survived; ``lost`` says why the input
    was given up, if it was.
    """

    def __init__(self, open_source: Callable[..., AvSource], reconnect_timeout_s: float, name: str):
        self._open = open_source
        self._timeout = reconnect_timeout_s
        self._closed = False
        self.name = name
        # A sender that is not up yet is waited for as long as one that went away.
        self._current = self._connect(None, time.monotonic() + reconnect_timeout_s, first=True)
        self.facts: StreamFacts = self._current.facts
        self.metadata = self._current.metadata
        self.stream_tags = self._current.stream_tags
        self.copied_streams = self._current.copied_streams
        self.reconnects = 0
        self.lost: str | None = None

    def chapters(self) -> list:
        return []

    def preview(self) -> Frame:
        return self._current.preview()

    def __enter__(self) -> ReconnectingSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._current.close()

    def items(self) -> Iterator[SourceItem]:
        """Frames and packets across connections, then one :class:`End`."""
        offset = 0  # added to every pts of the current connection, in the video time base
        last_pts: int | None = None
        bad = 0
        step = self.facts.pts_step
        video_tb = self.facts.time_base
        while True:
            for item in self._current.items():
                if isinstance(item, End):
                    bad += item.bad_packets
                    break
                if isinstance(item, Packet):
                    _shift_packet(item, offset, video_tb)
                    yield item
                    continue
                pts = item.pts
                if pts is not None:
                    pts += offset
                    if last_pts is not None and pts <= last_pts:  # never back in time
                        pts = last_pts + step
                    last_pts = pts
                yield Frame(item.planes, pts)
            if self._closed or not self._reconnect():
                yield End(bad)
                return
            # Carry on one frame after the last one; audio and subtitles move by the same amount.
            first = self._current.preview().pts
            if first is not None and last_pts is not None:
                offset = last_pts + step - first

    def _reconnect(self) -> bool:
        """Reopen within the reconnect timeout; False (and ``lost`` set) when it cannot."""
        self._current.close()
        current = self._connect(self.facts.layout, time.monotonic() + self._timeout)
        if current is None:
            self.lost = f"{self.name}: no stream for {self._timeout:g} s after it ended or stalled; gave up"
            return False
        self._current = current
        self.reconnects += 1
        return True

    def _connect(self, layout, deadline: float, first: bool = False) -> AvSource | None:
        """Open until ``deadline``; the first connection's last error is raised, later ones give None."""
        while True:
            try:
                return self._open(layout)
            except (NotAVideo, OSError):
                if self._closed or time.monotonic() + RETRY_INTERVAL_S >= deadline:
                    if first:
                        raise
                    return None
                time.sleep(RETRY_INTERVAL_S)


def _shift_packet(packet: Packet, offset: int, video_time_base) -> None:
    """Move an audio/subtitle packet by the same time as the video (its own time base)."""
    if not offset:
        return
    raw = packet.payload
    tb = raw.time_base or raw.stream.time_base
    if not tb:
        return
    shift = int(round(offset * video_time_base / tb))
    if raw.pts is not None:
        raw.pts += shift
    if raw.dts is not None:
        raw.dts += shift
