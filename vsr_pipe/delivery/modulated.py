"""The server's side of compact weights (``fit.train == "modulation"``): a title-level fit on frames
spread over the whole title, the chunks' fits starting from its codes, and the files that pay for
their bytes (``title.py``) written beside the LR.

Bytes are the LR's video packets (``io.keyframes.video_packet_sizes``), by chunk: a chunk's weights
are weighed against what its own stretch of the LR cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .fit import BaseModel, ChunkResult, ChunkTask, FitSettings, fit_chunk
from .lean_manifest import CHUNK_NAMES, TITLE_NAME
from .package import file_entry
from .planes import chunk_planes
from .resume import ChunkCache, task_key
from .title import Decision, decide_chunks, decide_title, title_frames

TITLE_FILE = TITLE_NAME
CHUNK_STEPS_SHARE = 1 / 3  # a chunk's fit starts from the title's codes: a third of the title's steps


@dataclass(frozen=True)
class TitleFit:
    """The title's fit: its ``result``, its ``file`` (None: it does not pay), the ``codes`` chunks
    start from, and the ``decision``."""

    result: ChunkResult
    file: bytes | None
    codes: dict
    decision: Decision


def chunk_settings(settings: FitSettings) -> FitSettings:
    return replace(settings, steps=max(1, int(round(settings.steps * CHUNK_STEPS_SHARE))))


def fit_title(
    lr_path: Path, master: str, spans, frames: int, base: BaseModel, settings: FitSettings, cache: ChunkCache,
    lr_bytes: int, db_per_doubling: float,
) -> TitleFit:  # fmt: skip
    """Fit codes on ``title.title_frames`` of the title (a pass over the chunks' planes keeping only
    those frames), or reuse a cached fit of the same inputs; decide whether they ship."""
    picked = set(title_frames(frames))
    lr, hr = [], []
    for chunk in chunk_planes(str(lr_path), master, spans):
        for k, index in enumerate(range(chunk.span.first, chunk.span.last + 1)):
            if index in picked:
                lr.append(chunk.lr[k].copy())
                hr.append(chunk.hr[k].copy())
    task = ChunkTask(len(spans), np.stack(lr), np.stack(hr), base, settings)  # index: after the chunks'
    key = task_key(task)
    result = cache.load(key)
    if result is None:
        result = fit_chunk(task)
        cache.save(key, result)
    data, codes, decision = decide_title(result, lr_bytes, db_per_doubling)
    return TitleFit(result, data, codes, decision)


def chunk_bytes(lr_path: Path, spans) -> list[int]:
    """Each chunk's share of the LR's video packets, by their pts (``spans`` in the LR's pts)."""
    from ..io.keyframes import video_packet_sizes

    sizes = video_packet_sizes(str(lr_path))
    return [sum(n for pts, n in sizes if s.first_pts <= pts <= s.last_pts) for s in spans]


def write_codes(
    staging: Path, title: TitleFit, results: list[ChunkResult], spans, lr_path: Path,
    db_per_doubling: float,
) -> tuple[dict | None, list[dict], list[Decision]]:  # fmt: skip
    """The title's file and each chunk's that pays, into ``staging``: the manifest's ``title`` entry,
    its chunk entries (no ``file`` where none ships) and every decision (the title's first)."""
    files, _, decisions = decide_chunks(title.codes, results, chunk_bytes(lr_path, spans), db_per_doubling)
    title_entry = None
    if title.file is not None:
        (staging / TITLE_FILE).write_bytes(title.file)
        title_entry = file_entry(staging / TITLE_FILE)
    entries = []  # only what the place does not imply (manifest version 4): every byte is fetched
    for span, data in zip(spans, files):
        entry: dict = {}
        if data is not None:
            name = CHUNK_NAMES % span.index
            (staging / name).write_bytes(data)
            entry = file_entry(staging / name)
        entry.update(first_pts=span.first_pts, last_pts=span.last_pts, frames=span.frames)
        entries.append(entry)
    return title_entry, entries, [title.decision, *decisions]


def start_shape(settings: FitSettings) -> tuple[int, int]:
    """(features, blocks) of the trained correction the codes modulate."""
    from .fit import start_correction

    net = start_correction(settings.start)
    return net.features, net.blocks


def effective_psnr(results: list[ChunkResult], decisions: list[Decision]) -> list[float]:
    """Per frame, the PSNR the client gets: a chunk's tuned figure where its file ships, else the
    figure with the title's codes (what its fit started from)."""
    out: list[float] = []
    for result, decision in zip(results, decisions[1:]):
        out += list(result.tuned_psnr if decision.ships else result.start_psnr)
    return out
