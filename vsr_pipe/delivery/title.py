"""Which modulation codes a title ships: a title-level set, then per chunk only a difference, and only
where it pays for its bytes.

The rule is rate–distortion's: weights of ``b`` bytes that lift a stretch of video by ``g`` dB pay
when spending those bytes on the LR instead would buy less. Around an operating point the LR's curve
gives ``db_per_doubling`` dB for twice the bytes, so ``g`` dB would cost the LR
``lr_bytes · (2^(g / db_per_doubling) − 1)`` more bytes; the weights ship when they cost less than
that. A chunk that does not pay ships no file and plays with the title's codes — which its fit
started from, so the PSNR it then gets is the one measured, not a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compact import encode, is_zero_delta
from .fit import CODES_PREFIX, ChunkResult

# Measured on the real camera clips at x2 (x264 medium, LR + ESPCN, CRF 28-38): 2.4-4.1 dB per
# doubling of the LR's bytes; 3 is the middle. Below CRF 38 the curves are steeper (5-6 dB), but
# 5 there moved a package by no more than 0.02 dB at equal bytes (bench/rd.py --db-per-doubling).
DB_PER_DOUBLING = 3.0
TITLE_FRAMES = 48  # frames spread over the title that its codes are fitted on (bounded memory)


@dataclass(frozen=True)
class Decision:
    """What one set of codes would buy and cost: ``gain_db`` over what the client has without them,
    the file's ``bytes``, the LR ``bytes`` it rides on, and whether it ``ships``."""

    gain_db: float
    bytes: int
    lr_bytes: int
    ships: bool


@dataclass(frozen=True)
class ShippedCodes:
    """The files to write: the title's codes (or None) and per chunk a delta file (or None), with
    the codes in effect per chunk and each decision (the title's first)."""

    title: bytes | None
    chunks: tuple[bytes | None, ...]
    effective: tuple[dict, ...]
    decisions: tuple[Decision, ...]


def title_frames(total: int, count: int = TITLE_FRAMES) -> list[int]:
    """``count`` frame indices spread evenly over ``total`` frames (all of them when fewer)."""
    if total <= count:
        return list(range(total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, count)})


def pays(gain_db: float, weight_bytes: int, lr_bytes: int, db_per_doubling: float = DB_PER_DOUBLING) -> bool:
    """Whether ``weight_bytes`` that add ``gain_db`` beat the same bytes spent on ``lr_bytes`` of LR."""
    if gain_db <= 0 or weight_bytes <= 0:
        return False
    return weight_bytes < lr_bytes * (2 ** (gain_db / db_per_doubling) - 1)


def codes_of(result: ChunkResult) -> dict[str, np.ndarray]:
    return {k[len(CODES_PREFIX) :]: np.asarray(v, np.int8) for k, v in result.tensors.items()}


def gain_of(result: ChunkResult) -> float:
    """Mean dB the fit's codes add over the codes it started from, on the frames it was fitted on."""
    return float(np.mean(result.tuned_psnr) - np.mean(result.start_psnr))


def decide_title(
    result: ChunkResult, lr_bytes: int, db_per_doubling: float = DB_PER_DOUBLING
) -> tuple[bytes | None, dict, Decision]:
    """The title's file (or None), the codes chunks start from, and the decision."""
    codes = codes_of(result)
    data = encode(codes)
    zero = {k: np.zeros_like(v) for k, v in codes.items()}
    ships = not is_zero_delta(codes, zero) and pays(gain_of(result), len(data), lr_bytes, db_per_doubling)
    return (data if ships else None), (codes if ships else zero), Decision(gain_of(result), len(data), lr_bytes, ships)


def decide_chunks(
    title_codes: dict,
    results: list[ChunkResult],
    chunk_lr_bytes: list[int],
    db_per_doubling: float = DB_PER_DOUBLING,
) -> tuple[tuple[bytes | None, ...], tuple[dict, ...], tuple[Decision, ...]]:
    """Per chunk in order: a delta from the codes in effect before it, if it pays; else none (the
    chunk plays with ``title_codes``)."""
    files, effective, decisions = [], [], []
    previous = title_codes
    for result, lr_bytes in zip(results, chunk_lr_bytes):
        codes = codes_of(result)
        data = encode(codes, previous)
        ships = not is_zero_delta(codes, previous) and pays(gain_of(result), len(data), lr_bytes, db_per_doubling)
        files.append(data if ships else None)
        previous = codes if ships else title_codes
        effective.append(previous)
        decisions.append(Decision(gain_of(result), len(data), lr_bytes, ships))
    return tuple(files), tuple(effective), tuple(decisions)
