"""Pictures people would rather see than read: PSNR per frame as a PNG line chart (Pillow only)."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw


def plot_per_frame(scores, path: str | Path, title: str = "", width: int = 900, height: int = 320) -> None:
    """Line chart of ``scores.psnr`` (dB) against frame index."""
    values = [p for p in scores.psnr if math.isfinite(p)]
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, width - 20, 30, height - 40
    draw.text((left, 8), f"{title}  mean {scores.mean_psnr:.2f} dB", fill="black")
    draw.rectangle([left, top, right, bottom], outline="black")
    if values:
        lo, hi = math.floor(min(values)) - 1, math.ceil(max(values)) + 1
        n = max(len(scores.psnr) - 1, 1)
        for db in range(int(lo), int(hi) + 1, max(1, int((hi - lo) / 6))):
            y = bottom - (db - lo) / (hi - lo) * (bottom - top)
            draw.line([left, y, right, y], fill=(225, 225, 225))
            draw.text((8, y - 6), f"{db} dB", fill="black")
        points = [
            (left + i / n * (right - left), bottom - (min(max(p, lo), hi) - lo) / (hi - lo) * (bottom - top))
            for i, p in enumerate(scores.psnr)
            if math.isfinite(p)
        ]
        if len(points) > 1:
            draw.line(points, fill=(200, 40, 40), width=2)
        draw.text((left, bottom + 8), "frame 0", fill="black")
        draw.text((right - 60, bottom + 8), f"frame {n}", fill="black")
    img.save(path)
