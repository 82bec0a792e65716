"""Joint fitting (STDO's data-aware joint training): one correction over every chunk's frames, for
comparison with one correction per chunk.

The joint fit is one :class:`~.fit.ChunkTask` whose frames are all the chunks' frames stacked, with
the budget of all the chunks together; its result is split back per chunk (same tensors, each
chunk's own frames' Y-PSNR), so the package and the report read as for per-chunk fitting.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .chunks import ChunkSpan
from .fit import BaseModel, ChunkResult, ChunkTask, FitSettings

JOINT_INDEX = 0  # the joint task's index (its seed): the first chunk's


def joint_task(spans: list[ChunkSpan], lr_frames, hr_frames, base: BaseModel, settings: FitSettings) -> ChunkTask:
    """One task over the frames of all ``spans`` ((n, h, w) Y planes stacked in chunk order), with
    ``settings``' budget (steps or seconds) multiplied by the number of chunks."""
    n = len(spans)
    budget = replace(settings, steps=settings.steps * n, seconds=settings.seconds * n)
    frames = [k for s in spans for k in range(s.first, s.last + 1)]
    lr = np.stack([lr_frames[k] for k in frames])
    hr = np.stack([hr_frames[k] for k in frames])
    return ChunkTask(JOINT_INDEX, lr, hr, base, budget)


def split_result(result: ChunkResult, spans: list[ChunkSpan]) -> list[ChunkResult]:
    """The joint ``result`` as one result per chunk: the shared tensors, losses, steps and seconds,
    and the chunk's own frames' Y-PSNR (generic and tuned)."""
    out, start = [], 0
    for span in spans:
        end = start + span.frames
        out.append(
            replace(
                result,
                index=span.index,
                generic_psnr=tuple(result.generic_psnr[start:end]),
                tuned_psnr=tuple(result.tuned_psnr[start:end]),
            )
        )
        start = end
    if start != len(result.generic_psnr):
        raise ValueError(f"the joint fit measured {len(result.generic_psnr)} frames; the chunks hold {start}")
    return out
