"""The forms a package takes, written and opened: a folder (``lr.mp4`` beside the weights), an HLS
folder (``lr.m3u8`` whose segments are exactly the chunks, playable as it is), and one Matroska file
(``--embed``: the LR with the manifest, weights, report and chart as attachments).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import EncodeOptions
from ..errors import NotAVideo
from .lean_manifest import SEGMENT_NAMES
from .package import (
    EMBEDDED_VIDEO,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_WEIGHTS_BYTES,
    Package,
    PackageError,
    Place,
    file_entry,
    plain_name,
    playlist_segments,
    read_manifest,
)

LR_FILES = {"folder": "lr.mp4", "hls": "lr.m3u8", "embed": "lr.mkv"}  # the LR as encoded into the staging folder
SEGMENTS = SEGMENT_NAMES
MAX_ATTACHMENTS = 100_010  # chunks, and the manifest, report and chart
# Not image/png for the chart: FFmpeg reads an image attachment back as a cover-art video stream.
_MIME = {".json": "application/json"}


def lr_encode(encode: EncodeOptions, layout: str, staging: Path, frames: int) -> EncodeOptions:
    """The LR's encoder and muxer options for ``layout``. Folder: the MP4's index (moov) before its
    media (``faststart``), so a client reads it from a web server as it arrives. HLS: a segment per
    chunk (:func:`segment_per_keyframe`)."""
    if layout == "folder":
        if any(k == "movflags" for k, _ in encode.muxer_options):
            return encode
        return replace(encode, muxer_options=(*encode.muxer_options, ("movflags", "+faststart")))
    if layout != "hls":
        return encode
    return segment_per_keyframe(encode, frames, staging / SEGMENTS)


def segment_per_keyframe(encode: EncodeOptions, frames: int, segments: Path) -> EncodeOptions:
    """``encode`` for an HLS playlist (VOD) whose segments, named by the pattern ``segments``, start
    exactly at the keyframes the caller forces: the muxer cuts at every keyframe (a tiny
    ``hls_time``), and the encoder makes none unasked (a GOP longer than the ``frames``, no
    scene-cut keyframes). A package's LR (a segment per chunk) and a ladder's direct rungs (the
    same segments, so a player switches rungs at any segment) are made so."""
    muxer = {"hls_time": "0.001", "hls_playlist_type": "vod", "hls_segment_filename": str(segments)}
    codec = {"g": str(frames + 1)}
    if encode.codec == "libx264":
        codec["sc_threshold"] = "0"
    elif encode.codec == "libx265":
        codec["x265-params"] = "scenecut=0"
    given = dict(encode.codec_options)
    return replace(
        encode,
        muxer_options=(*encode.muxer_options, *muxer.items()),
        codec_options=(*encode.codec_options, *((k, v) for k, v in codec.items() if k not in given)),
    )


def lr_video(staging: Path, layout: str) -> tuple[dict, int, list[str]]:
    """What the manifest says of the LR in ``staging`` (its "video" entry), its bytes, and (HLS)
    its segments in order."""
    path = staging / LR_FILES[layout]
    if layout == "embed":
        return dict(EMBEDDED_VIDEO), path.stat().st_size, []
    entry = file_entry(path)
    if layout == "folder":
        return entry, entry["size"], []
    segments = playlist_segments(path.read_text())
    entry["segments"] = [file_entry(staging / name) for name in segments]
    return entry, entry["size"] + sum(s["size"] for s in entry["segments"]), segments


def write_embedded(staging: Path, dst: Path, names: list[str]) -> None:
    """The Matroska file ``dst``: the LR in ``staging`` with the files ``names`` of ``staging``
    (manifest, weights, report, chart) attached."""
    from ..io.attachments import Attachment, remux_with_attachments

    files = [
        Attachment(n, _MIME.get(Path(n).suffix, "application/octet-stream"), (staging / n).read_bytes()) for n in names
    ]
    remux_with_attachments(staging / LR_FILES["embed"], dst, files)


def holds_package(path: str | Path) -> bool:
    """Whether the media file ``path`` carries a delivery package (a ``manifest.json`` attachment)."""
    from ..io.attachments import read_attachments

    try:
        return any(a.name == MANIFEST for a in read_attachments(path))
    except NotAVideo:
        return False


def read_embedded(path: str | Path, work: Path) -> Package:
    """The package attached to the Matroska file ``path``, its files extracted into ``work`` and
    checked as a folder's are (the video, being the file itself, is not hashed)."""
    from ..io.attachments import read_attachments

    path = Path(path)
    if not path.is_file():
        raise PackageError(f"{path}: not a delivery package (no such file)")
    try:
        attachments = read_attachments(path)
    except NotAVideo as e:
        raise PackageError(str(e)) from None
    place = Place(work, container=path)
    if not any(a.name == MANIFEST for a in attachments):
        raise PackageError(f"{path}: no {MANIFEST} attachment (not an embedded delivery package)")
    if len(attachments) > MAX_ATTACHMENTS:
        raise PackageError(f"{path}: {len(attachments)} attachments, more than a package holds")
    work.mkdir(parents=True, exist_ok=True)
    seen = set()
    for a in attachments:
        try:
            name = plain_name(a.name, path)
        except PackageError:
            continue  # not one of a package's files (a font, say); a file the manifest lists is then missing
        if name in seen:
            raise PackageError(f"{place.show(name)}: attached twice")
        seen.add(name)
        limit = MAX_MANIFEST_BYTES if name == MANIFEST else MAX_WEIGHTS_BYTES
        if len(a.data) > limit:
            raise PackageError(f"{place.show(name)}: {len(a.data)} bytes, more than {limit} allowed")
        (work / name).write_bytes(a.data)
    return read_manifest(place, embedded_in=path)
