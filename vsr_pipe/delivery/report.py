"""The package's chart: Y-PSNR per frame, generic against overfitted, chunk boundaries marked."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from ..quality.plots import plot_series
from ..quality.video import FrameScores

WIDTH, HEIGHT = 900, 320
# Where plot_series draws the plot area for two labelled series with a title (its layout constants).
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, WIDTH - 20, 30 + 14 + 14, HEIGHT - 40


def write_chart(path: Path, generic: list, tuned: list) -> None:
    """``generic`` and ``tuned``: per chunk, the Y-PSNR of each of its frames (dB)."""
    flat_generic = tuple(p for chunk in generic for p in chunk)
    flat_tuned = tuple(p for chunk in tuned for p in chunk)
    series = {"generic": FrameScores(flat_generic, ()), "overfitted": FrameScores(flat_tuned, ())}
    plot_series(series, path, f"Y-PSNR per frame, {len(generic)} chunks (grey lines: chunk starts)", WIDTH, HEIGHT)
    n = max(len(flat_generic) - 1, 1)
    img = Image.open(path).convert("RGB")
    draw = ImageDraw.Draw(img)
    start = 0
    for chunk in generic[:-1]:
        start += len(chunk)
        x = _LEFT + start / n * (_RIGHT - _LEFT)
        draw.line([x, _TOP, x, _BOTTOM], fill=(150, 150, 150), width=1)
    img.save(path)
