"""The client side: restore a delivery package (a folder, an HLS folder, a Matroska file with the
package attached, or a URL to its manifest or its HLS playlist).

A local package is checked whole before a frame moves (``package.py``). Each chunk's correction is
put on the client's own generic model, and the pipeline runs with a weight schedule by timestamp:
the engines prepare every chunk's weights ahead and swap them in at the chunk's first frame (no
engine is rebuilt, and no model call spans two chunks). A package at a URL is restored as it
streams (``stream.py``): the LR read from its URL, each chunk's weights fetched and checked while
the chunks before it play.
"""

from __future__ import annotations

import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..config import EncodeOptions, PipelineOptions, WeightSchedule, WeightsSwap
from .package import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_WEIGHTS_BYTES,
    Package,
    PackageError,
    expanded,
    load_manifest,
    read_package,
)

FETCH_TIMEOUT_S = 30.0
MAX_LR_OFFSET_S = 60  # a manifest's lr_offset: a muxer's few frames, never minutes


@dataclass(frozen=True)
class RestoreOptions:
    """How the client runs: encoder, engine, frames per model call."""

    encode: EncodeOptions = field(default_factory=EncodeOptions)
    engine: str = "auto"
    device: str = "auto"
    precision: str = "auto"  # as PipelineOptions.precision
    threads: int = 0
    chunk_frames: int = 4


def restore(
    package: str,
    dst: str,
    options: RestoreOptions = RestoreOptions(),
    on_progress: Callable | None = None,
    stop: threading.Event | None = None,
):
    """Restore ``package`` (a folder, a ``.mkv`` with the package attached, or
    ``http(s)://.../manifest.json`` or ``.../lr.m3u8``) into the video ``dst``; returns the
    pipeline's ``RunSummary``. Raises :class:`PackageError` for a bad package."""
    from ..pipeline.run import run_to_file

    with tempfile.TemporaryDirectory(prefix="vsr-restore-") as work:
        if package.startswith(("http://", "https://")):
            return _restore_streamed(package, dst, Path(work), options, on_progress, stop)
        pkg = open_package(package, Path(work))
        pipeline = restore_pipeline(pkg, options)
        return run_to_file(str(pkg.video), dst, pipeline, on_progress=on_progress, stop=stop)


def _restore_streamed(url: str, dst: str, work: Path, options: RestoreOptions, on_progress, stop):
    """Restore the package at ``url`` as it streams: the first chunk's weights fetched before the
    first frame, each later chunk's while the ones before it play (``stream.py``)."""
    from ..pipeline.run import run_to_file
    from .package import chunk_codes
    from .stream import WeightsFeed, fetch_checked, open_stream

    streamed = open_stream(url, work)
    pkg = streamed.package
    _check_base(pkg, streamed.place.show(MANIFEST))
    if pkg.weights_format == "modulation":  # a few hundred bytes of codes: all fetched and checked first
        pkg = replace(
            pkg, chunk_codes=chunk_codes(pkg, lambda e: fetch_checked(streamed.place, e), streamed.place.show)
        )
        pipeline = replace(restore_pipeline(pkg, options), source=streamed.source)
        summary = run_to_file(streamed.video, dst, pipeline, on_progress=on_progress, stop=stop)
        return replace(summary, input=url, notes=summary.notes + streamed.notes)  # not the temporary copy's path
    with WeightsFeed(streamed, lambda k: _full_model(pkg, k)) as feed:
        pipeline = replace(_pipeline(pkg, feed.schedule(), options), source=streamed.source)
        summary = run_to_file(streamed.video, dst, pipeline, on_progress=on_progress, stop=stop)
    return replace(summary, input=url, notes=summary.notes + streamed.notes)


def embedded_package(src: str) -> bool:
    """Whether ``src`` is a local Matroska file with a delivery package attached (``deliver --embed``)."""
    from .containers import holds_package

    path = Path(src)
    return path.suffix.lower() in (".mkv", ".mka", ".webm") and path.is_file() and holds_package(path)


def open_package(package: str, work: Path) -> Package:
    """A checked package: a local folder as it is; a Matroska file's attachments extracted into
    ``work``; or the files of a URL (its manifest, or its HLS playlist) downloaded into ``work``."""
    from .containers import read_embedded

    if package.startswith(("http://", "https://")):
        return read_package(_download(package, work / "package"))
    if Path(package).is_file():
        return read_embedded(package, work / "embedded")
    return read_package(package)


def restore_pipeline(pkg: Package, options: RestoreOptions = RestoreOptions()) -> PipelineOptions:
    """The pipeline options that restore ``pkg``: its model at the master's size, with a weight
    schedule by pts whose entries (full models, in memory: no file is written) are the chunks'
    weights."""
    _check_base(pkg)
    built: dict = {}  # weights -> full model: a joint package's chunks share one, so do equal codes
    swaps: list[WeightsSwap] = []
    for k, chunk in enumerate(pkg.chunks):
        key = _codes_key(pkg.chunk_codes[k]) if pkg.weights_format == "modulation" else chunk.file
        if key not in built:
            built[key] = _full_model(pkg, k)
        if not swaps or swaps[-1].weights is not built[key]:  # a swap only where the weights change
            swaps.append(WeightsSwap(chunk.first_pts, built[key]))
    return _pipeline(pkg, WeightSchedule(tuple(swaps), by="pts", base=swaps[0].weights), options)


def _check_base(pkg: Package, where: str | None = None) -> None:
    """The package was made on the generic weights this vsr-pipe ships (and, for modulation codes,
    on the trained correction they modulate); ``where`` names its manifest."""
    from ..weights.shipped import shipped_sha

    for name, sha in ((pkg.base.weights, pkg.base_sha256), (pkg.start, pkg.start_sha256)):
        if not name:
            continue
        known = shipped_sha(name)
        where = where or (pkg.video if pkg.layout == "embed" else pkg.folder / MANIFEST)
        if name == pkg.start and not known:
            raise PackageError(f"{where}: made for {name} weights, which this vsr-pipe does not ship")
        # Version 5 lists the first 16 hex digits; fewer would not tell two weights apart.
        if sha and known and (len(sha) < 16 or not known.startswith(sha.lower())):
            raise PackageError(f"{where}: made for other {name} weights ({sha[:12]}); this vsr-pipe ships {known[:12]}")


def _codes_key(codes: dict) -> bytes:
    return b"".join(np.asarray(codes[k], np.int8).tobytes() for k in sorted(codes))


def _pipeline(pkg: Package, schedule: WeightSchedule, options: RestoreOptions) -> PipelineOptions:
    from ..io.tags import RescaleTag

    model = "irn" if pkg.base.kind == "irn_up" else "espcn"
    (h, w), (lh, lw) = pkg.base.hr, pkg.base.lr
    # What the LR's own tag says, for an LR that keeps none (MPEG-TS): the manifest knows the factor.
    tag = RescaleTag(pkg.base.weights, pkg.base_sha256[:12], (w, h), (lw, lh)).format() if model == "irn" else None
    return PipelineOptions(
        size=pkg.master_size,
        model=model,
        weights=schedule,
        engine=options.engine,
        device=options.device,
        precision=options.precision,
        threads=options.threads,
        chunk_frames=options.chunk_frames,
        encode=_on_master_timeline(pkg, options.encode),
        rescale_tag=tag,
    )


def _on_master_timeline(pkg: Package, encode: EncodeOptions) -> EncodeOptions:
    """``encode`` with the output moved back onto the master's timeline by the manifest's
    ``lr_offset`` (seconds the LR runs ahead: MPEG-TS, HLS's container, moves every stream on when
    one starts before 0, as B-frames and AAC priming do)."""
    text = str(pkg.manifest.get("lr_offset", "0"))
    try:
        offset = Fraction(text)
    except (ValueError, ZeroDivisionError):
        offset = None
    if offset is None or abs(offset) > MAX_LR_OFFSET_S:
        where = pkg.video if pkg.layout == "embed" else pkg.folder / MANIFEST
        raise PackageError(f"{where}: lr_offset {text!r} is not a number of seconds within ±{MAX_LR_OFFSET_S}")
    if not offset:
        return encode
    return replace(encode, muxer_options=(("output_ts_offset", f"{-float(offset):.6f}"), *encode.muxer_options))


def _full_model(pkg: Package, k: int) -> bytes:
    """Chunk ``k``'s correction on the generic model, as the bytes of one safetensors file that the
    pipeline loads from memory (no file is written)."""
    import torch
    from safetensors.numpy import load_file

    from ..models.correction import Corrected, CorrectionNet
    from ..weights.store import load_model, model_bytes, shipped_path

    net = CorrectionNet(pkg.base.factor, pkg.features, pkg.blocks)
    if pkg.weights_format == "modulation":
        from ..models.modulation import fold
        from .fit import start_correction

        codes = {name: torch.from_numpy(np.asarray(v)) for name, v in pkg.chunk_codes[k].items()}
        net.load_state_dict(fold(start_correction(pkg.start), codes), strict=True)
    else:
        tensors = load_file(str(pkg.folder / pkg.chunks[k].file))
        state = {name.split(".", 1)[1]: torch.from_numpy(np.asarray(v, np.float32)) for name, v in tensors.items()}
        net.load_state_dict(state, strict=True)
    return model_bytes(Corrected(load_model(shipped_path(pkg.base.weights)), net))


def _download(url: str, folder: Path) -> Path:
    """The manifest at ``url`` (or beside the HLS playlist at ``url``) and the files it lists (the
    LR video, or its playlist and segments, and the weights) into ``folder``; the sizes are bounded
    before and while reading, and checked against the manifest afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    path = urllib.parse.urlsplit(url).path
    playlist = path.rsplit("/", 1)[-1] if path.lower().endswith(".m3u8") else None
    base = url.rsplit("/", 1)[0] + "/"
    manifest_url = urllib.parse.urljoin(base, MANIFEST) if playlist else url
    (folder / MANIFEST).write_bytes(_fetch(manifest_url, MAX_MANIFEST_BYTES))
    try:
        manifest = expanded(load_manifest((folder / MANIFEST).read_bytes(), MAX_MANIFEST_BYTES))
        video = manifest["video"]
        if manifest.get("layout") == "embed":
            raise PackageError(f"{manifest_url}: an embedded package's manifest; restore its .mkv file instead")
        if playlist and (manifest.get("layout") != "hls" or urllib.parse.unquote(playlist) != video["file"]):
            raise PackageError(f"{url}: the {MANIFEST} beside it is not this playlist's package")
        weights = [e for e in [manifest.get("title"), *manifest["chunks"]] if e and e.get("file") is not None]
        entries = [video, *video.get("segments", ()), *weights]
        names = dict.fromkeys((str(e["file"]), int(e["size"])) for e in entries)  # a joint package names one file often
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise PackageError(f"{manifest_url}: malformed manifest ({e})") from None
    for name, size in names:
        if "/" in name or "\\" in name or name.startswith("."):
            raise PackageError(f"{manifest_url}: '{name}' is not a plain file name")
        limit = min(size, MAX_WEIGHTS_BYTES) if name.endswith(".safetensors") else size
        (folder / name).write_bytes(_fetch(urllib.parse.urljoin(base, urllib.parse.quote(name)), limit))
    return folder


def _fetch(url: str, limit: int) -> bytes:
    """At most ``limit`` bytes of ``url`` (one more means too large)."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            data = response.read(limit + 1)
    except (OSError, ValueError) as e:
        raise PackageError(f"{url}: cannot fetch ({e})") from None
    if len(data) > limit:
        raise PackageError(f"{url}: larger than the {limit} bytes the manifest allows")
    return data
