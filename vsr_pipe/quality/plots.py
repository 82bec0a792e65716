"""Pictures people would rather see than read: PSNR per frame as a PNG line chart (Pillow only)."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = ((200, 40, 40), (40, 90, 200), (40, 150, 60), (150, 90, 20))


def plot_per_frame(scores, path: str | Path, title: str = "", width: int = 900, height: int = 320) -> None:
    """Line chart of ``scores.psnr`` (dB) against frame index."""
    plot_series({"": scores}, path, title, width, height)


def plot_series(series: dict, path: str | Path, title: str = "", width: int = 900, height: int = 320) -> None:
    """PSNR per frame of several videos on one chart: ``{label: FrameScores}``, each with its mean."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, width - 20, 30 + 14 * max(len(series) - 1, 0), height - 40
    draw.text((left, 8), title, fill="black")
    for k, (label, scores) in enumerate(series.items()):
        legend = f"{label}  mean {scores.mean_psnr:.2f} dB".strip()
        colour = "black" if len(series) == 1 else COLOURS[k % len(COLOURS)]
        draw.text((left, 8 + 14 * (k + (1 if title else 0))), legend, fill=colour)
    top += 14 if title else 0
    draw.rectangle([left, top, right, bottom], outline="black")
    values = [p for scores in series.values() for p in scores.psnr if math.isfinite(p)]
    if not values:
        img.save(path)
        return
    lo, hi = math.floor(min(values)) - 1, math.ceil(max(values)) + 1
    n = max(max(len(scores.psnr) for scores in series.values()) - 1, 1)
    for db in range(int(lo), int(hi) + 1, max(1, int((hi - lo) / 6))):
        y = bottom - (db - lo) / (hi - lo) * (bottom - top)
        draw.line([left, y, right, y], fill=(225, 225, 225))
        draw.text((8, y - 6), f"{db} dB", fill="black")
    for k, scores in enumerate(series.values()):
        points = [
            (left + i / n * (right - left), bottom - (min(max(p, lo), hi) - lo) / (hi - lo) * (bottom - top))
            for i, p in enumerate(scores.psnr)
            if math.isfinite(p)
        ]
        if len(points) > 1:
            draw.line(points, fill=COLOURS[k % len(COLOURS)], width=2)
    draw.text((left, bottom + 8), "frame 0", fill="black")
    draw.text((right - 60, bottom + 8), f"frame {n}", fill="black")
    img.save(path)
