"""Restoring a package from its URL as it plays, as a live filter would: nothing waits for the
whole title.

Before the first frame only the manifest (checked as a folder's is, less its files) and the first
chunk's weights are fetched. The LR is read by the pipeline's source straight from its URL
(FFmpeg's http demuxer; for HLS, a local copy of the checked playlist whose segments are their
URLs). Each later chunk's weights are fetched in a background thread while earlier chunks play, at
most ``depth`` swaps ahead of the one playing, and checked as a folder's are (size bounded while
reading, sha256, the safetensors header's names, shapes and dtype) before the model stage may use
them. The LR's bytes are not hashed: they are decoded as they arrive.
"""

from __future__ import annotations

import struct
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from ..config import SourceOptions, WeightSchedule, WeightsSwap
from .package import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_PLAYLIST_BYTES,
    MAX_VIDEO_BYTES,
    MAX_WEIGHTS_BYTES,
    Package,
    PackageError,
    Place,
    check_file,
    check_weights,
    plain_name,
    playlist_segments,
    read_manifest,
)

FETCH_TIMEOUT_S = 30.0
PREFETCH_DEPTH = 1  # swaps fetched ahead of the one playing
STREAM_PLAYLIST = "stream.m3u8"  # the checked HLS playlist, its segments as URLs, for FFmpeg
_BLOCK = 1 << 16
# What FFmpeg may open for a local playlist of http segments (it refuses http from a file's playlist otherwise).
# A segment that stalls ends the read after the fetch timeout (in microseconds) instead of hanging.
_HLS_OPTIONS = (("protocol_whitelist", "file,http,https,tcp,tls"), ("rw_timeout", str(int(FETCH_TIMEOUT_S * 1e6))))


@dataclass(frozen=True)
class StreamedPackage:
    """A package at a URL, its manifest checked: what the pipeline's source opens (``video``, a
    URL or a local playlist) and with which ``source`` options, and notes for the run summary."""

    package: Package
    place: Place
    video: str
    source: SourceOptions = field(default_factory=SourceOptions)
    notes: tuple[str, ...] = ()


def open_stream(url: str, work: Path) -> StreamedPackage:
    """The package whose ``manifest.json`` (or HLS playlist, the manifest beside it) is at ``url``;
    its files are fetched into ``work`` as they are needed. Raises :class:`PackageError`."""
    folder = work / "package"
    folder.mkdir(parents=True, exist_ok=True)
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    playlist = name if name.lower().endswith(".m3u8") else None
    base = url.rsplit("/", 1)[0] + "/"
    manifest_url = base + MANIFEST if playlist else url
    (folder / MANIFEST).write_bytes(fetch(manifest_url, MAX_MANIFEST_BYTES))
    place = Place(folder, url=base)
    pkg = read_manifest(place, streamed=True)
    if playlist and (pkg.layout != "hls" or urllib.parse.unquote(playlist) != pkg.video.name):
        raise PackageError(f"{url}: the {MANIFEST} beside it is not this playlist's package")
    if pkg.layout == "hls":
        return StreamedPackage(pkg, place, str(_local_playlist(pkg, place, work)), SourceOptions(options=_HLS_OPTIONS))
    video_url = base + urllib.parse.quote(pkg.video.name)
    if pkg.video.suffix.lower() not in (".mp4", ".mov", ".m4v") or index_first(video_url):
        return StreamedPackage(pkg, place, video_url)
    # An MP4 whose index (moov) follows its media cannot be played as it arrives: fetch it whole, checked.
    (folder / pkg.video.name).write_bytes(fetch(video_url, min(int(pkg.manifest["video"]["size"]), MAX_VIDEO_BYTES)))
    check_file(place, pkg.manifest["video"], MAX_VIDEO_BYTES)
    note = f"{video_url} has its index after its media (not faststart): fetched whole before playing"
    return StreamedPackage(pkg, place, str(folder / pkg.video.name), notes=(note,))


def _local_playlist(pkg: Package, place: Place, work: Path) -> Path:
    """The package's HLS playlist fetched and checked (size, sha256, exactly the manifest's segments,
    no other file named), written again with each segment as its URL for FFmpeg to read."""
    entry = pkg.manifest["video"]
    (place.folder / pkg.video.name).write_bytes(fetch(place.show(pkg.video.name), MAX_PLAYLIST_BYTES))
    path = check_file(place, entry, MAX_PLAYLIST_BYTES)
    segments = [plain_name(str(s["file"]), place.show(MANIFEST)) for s in entry["segments"]]
    try:
        lines = path.read_text().splitlines()
        listed = playlist_segments("\n".join(lines))
    except (ValueError, UnicodeDecodeError) as e:
        raise PackageError(f"{place.show(path.name)}: {e}") from None
    if listed != segments:
        raise PackageError(f"{place.show(path.name)}: its segments are not the manifest's ({listed[:3]}...)")
    urls = [
        line if line.startswith("#") or not line.strip() else place.url + urllib.parse.quote(line.strip())
        for line in lines
    ]
    local = work / STREAM_PLAYLIST
    local.write_text("\n".join(urls) + "\n")
    return local


class WeightsFeed:
    """The weights of a streamed package's swaps (one per change of weights file, in chunk order):
    the first fetched on entering, the rest by a background thread, at most ``depth`` swaps ahead
    of the one the model stage is on (``playing``). Each is checked, then made into the full model
    by ``build(k)`` (chunk ``k``'s correction on the generic model, a safetensors file's bytes in
    memory) before its future resolves; a failure resolves it (and every later one) with the PackageError.
    """

    def __init__(self, streamed: StreamedPackage, build: Callable[[int], bytes], depth: int = PREFETCH_DEPTH):
        self.pkg, self.place, self.build, self.depth = streamed.package, streamed.place, build, depth
        self.starts: list[tuple[int, int]] = []  # (first pts, chunk index) where the weights file changes
        for k, chunk in enumerate(self.pkg.chunks):
            if not self.starts or self.pkg.chunks[self.starts[-1][1]].file != chunk.file:
                self.starts.append((chunk.first_pts, k))
        self.futures: list[Future] = [Future() for _ in self.starts]
        self._playing = 0
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._fetch_rest, name="vsr-weights", daemon=True)

    def __enter__(self) -> WeightsFeed:
        self.futures[0].set_result(self._fetch(0))
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def schedule(self) -> WeightSchedule:
        """The run's weight schedule by pts: the first swap in hand (the model stage is built from
        it), the later ones futures, the stage telling ``playing`` which swap it has reached."""
        first = WeightsSwap(self.starts[0][0], self.futures[0].result())
        later = [WeightsSwap(pts, f) for (pts, _), f in zip(self.starts[1:], self.futures[1:])]
        return WeightSchedule((first, *later), by="pts", base=first.weights, on_swap=self.playing)

    def playing(self, swap: int) -> None:
        """The model stage has reached swap ``swap``: the thread may fetch up to ``swap + depth``."""
        with self._changed:
            self._playing = max(self._playing, swap)
            self._changed.notify_all()

    def close(self) -> None:
        """Stop fetching (a fetch under way ends at its next block) and wait for the thread."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=FETCH_TIMEOUT_S)

    def _fetch_rest(self) -> None:
        for i in range(1, len(self.futures)):
            with self._changed:
                self._changed.wait_for(lambda i=i: self._closed or i - self._playing <= self.depth)
                if self._closed:
                    for future in self.futures[i:]:
                        future.cancel()
                    return
            try:
                weights = self._fetch(i)
            except BaseException as e:  # handed to the model stage, which ends the run with it
                for future in self.futures[i:]:
                    future.set_exception(e)
                return
            self.futures[i].set_result(weights)

    def _fetch(self, i: int) -> bytes:
        k = self.starts[i][1]
        chunk = self.pkg.chunks[k]
        name = plain_name(chunk.file, self.place.show(MANIFEST))
        if chunk.size > MAX_WEIGHTS_BYTES:
            raise PackageError(
                f"{self.place.show(name)}: the manifest lists {chunk.size} bytes, more than {MAX_WEIGHTS_BYTES} allowed"
            )
        data = fetch(self.place.show(urllib.parse.quote(name)), chunk.size, lambda: self._closed)
        (self.place.folder / name).write_bytes(data)
        check_weights(self.place, {"file": name, "size": chunk.size, "sha256": chunk.sha256}, self.pkg)
        return self.build(k)


def fetch_checked(place: Place, entry: dict) -> Path:
    """The package file ``entry`` names, fetched from ``place``'s URL into its folder and checked
    (size bounded while reading, then size and sha256 as listed)."""
    from .package import MAX_COMPACT_BYTES

    name = plain_name(str(entry["file"]), place.show(MANIFEST))
    limit = min(int(entry["size"]), MAX_COMPACT_BYTES)
    (place.folder / name).write_bytes(fetch(place.show(urllib.parse.quote(name)), limit))
    return check_file(place, entry, MAX_COMPACT_BYTES)


def fetch(url: str, limit: int, cancelled: Callable[[], bool] = lambda: False) -> bytes:
    """At most ``limit`` bytes of ``url``, read in blocks (one byte more means too large)."""
    data = bytearray()
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            while len(data) <= limit:
                block = response.read(min(_BLOCK, limit + 1 - len(data)))
                if not block:
                    break
                data += block
                if cancelled():
                    raise PackageError(f"{url}: fetch stopped (the run ended)")
    except PackageError:
        raise
    except (OSError, ValueError) as e:
        raise PackageError(f"{url}: cannot fetch ({e})") from None
    if len(data) > limit:
        raise PackageError(f"{url}: larger than the {limit} bytes the manifest allows")
    return bytes(data)


def index_first(url: str) -> bool:
    """Whether the MP4 at ``url`` has its index (moov) before its media (mdat), as ``faststart``
    writes it: then FFmpeg plays it as it arrives, with no seek to its end."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            for _ in range(16):  # ftyp, free, ... then moov or mdat
                head = response.read(8)
                if len(head) < 8:
                    return False
                size, kind = struct.unpack(">I4s", head)
                if kind in (b"moov", b"mdat"):
                    return kind == b"moov"
                if size == 1:
                    size = struct.unpack(">Q", response.read(8))[0] - 8
                if not 8 <= size <= 8 + (1 << 20):  # 0 (to the end) or a large atom before either: not streamable
                    return False
                response.read(size - 8)
    except (OSError, ValueError, struct.error) as e:
        raise PackageError(f"{url}: cannot fetch ({e})") from None
    return False
