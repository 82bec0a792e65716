"""Matroska attachments: files carried inside a video file (fonts for subtitles; a delivery
package's manifest and weights)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import av

from ..errors import NotAVideo, OutputError


@dataclass(frozen=True)
class Attachment:
    """One attached file: its name, MIME type and bytes."""

    name: str
    mimetype: str
    data: bytes


def read_attachments(path: str | os.PathLike) -> list[Attachment]:
    """The attachments of the media file ``path``, in stream order (none for formats without them).
    Raises :class:`~vsr_pipe.errors.NotAVideo` for a file FFmpeg cannot open."""
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            return [Attachment(s.name or "", s.mimetype or "", s.data) for s in container.streams.attachments]
    except (av.error.FFmpegError, ValueError) as e:
        raise NotAVideo(f"{path} is not a media file FFmpeg can read ({e})") from None


def remux_with_attachments(src: str | os.PathLike, dst: str | os.PathLike, attachments: Sequence[Attachment]) -> None:
    """Write the Matroska file ``dst``: every video, audio and subtitle stream of ``src`` copied
    packet for packet (with the file's and the streams' tags, dispositions and chapters), and
    ``attachments`` added. Raises :class:`~vsr_pipe.errors.OutputError` when it cannot be written."""
    try:
        with av.open(str(src), metadata_errors="replace") as source, av.open(str(dst), "w", format="matroska") as out:
            streams = {}
            for s in source.streams:
                if s.type in ("video", "audio", "subtitle"):
                    streams[s.index] = out.add_stream_from_template(s)
                    streams[s.index].metadata.update(s.metadata)
                    streams[s.index].disposition = s.disposition
            out.metadata.update({k: v for k, v in source.metadata.items() if k.lower() != "encoder"})
            if source.chapters():
                out.set_chapters(source.chapters())
            for a in attachments:  # written with the header: before the first packet
                out.add_attachment(a.name, a.mimetype, a.data)
            for packet in source.demux(*(source.streams[i] for i in streams)):
                if packet.dts is None and not packet.size:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise OutputError(f"cannot write {dst}: {e}") from None
