"""Rate–distortion maths for delivery: Bjøntegaard deltas, the convex hull and an RD chart (numpy + Pillow).

Rates are sizes in bytes (of a whole encode, or of the same clip for every point of a comparison),
quality is Y-PSNR in dB. A curve is a list of ``RdPoint`` in any order; before interpolation it is
reduced to its efficient points: increasing bytes with strictly increasing PSNR (a point that costs
as many or more bytes than another but gives no more PSNR is dropped).

BD-rate and BD-PSNR follow VCEG-M33 (Bjøntegaard, 2001) with the piecewise cubic Hermite
interpolation (PCHIP) of the JCT-VC/JVET common-test-conditions sheets and of the ``bjontegaard``
Python package (method ``"pchip"``): log10(rate) as a function of PSNR (and PSNR as a function of
log10(rate)), integrated exactly over the interval both curves cover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class RdPoint:
    """One encode: its size in ``bytes``, its Y-PSNR in dB, and a ``label`` such as ``"direct crf 33"``."""

    bytes: int
    psnr: float
    label: str = ""


# ---------------------------------------------------------------------------------------------- curves


def _efficient(points: list[RdPoint]) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, PSNR dB) float64 arrays of the non-dominated points, both strictly increasing."""
    usable = [p for p in points if p.bytes > 0 and math.isfinite(p.psnr)]
    kept: list[RdPoint] = []
    for p in sorted(usable, key=lambda p: (p.bytes, -p.psnr)):
        if not kept or p.psnr > kept[-1].psnr:
            kept.append(p)
    return np.array([p.bytes for p in kept], np.float64), np.array([p.psnr for p in kept], np.float64)


class _Pchip:
    """Monotone piecewise cubic Hermite interpolant through (x, y), x strictly increasing, len >= 2.

    Slopes as in MATLAB ``pchip``, scipy's ``PchipInterpolator`` and the JCT-VC sheet: Fritsch–Carlson
    monotone slopes in Fritsch–Butland's weighted-harmonic-mean form inside, the shape-preserving
    three-point formula at the ends. Evaluation outside [x0, xn] extends the end cubics.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.h = np.diff(self.x)
        self.delta = np.diff(self.y) / self.h
        self.d = self._slopes()

    def _slopes(self) -> np.ndarray:
        h, delta = self.h, self.delta
        if len(h) == 1:
            return np.array([delta[0], delta[0]])
        d = np.zeros(len(self.x))
        w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
        same = delta[:-1] * delta[1:] > 0  # a flat side or a turn gets slope 0: no overshoot
        with np.errstate(divide="ignore", invalid="ignore"):
            d[1:-1] = np.where(same, (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:]), 0.0)
        d[0] = _end_slope(h[0], h[1], delta[0], delta[1])
        d[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
        return d

    def _coefficients(self, k: np.ndarray) -> tuple[np.ndarray, ...]:
        """Cubic c0 + c1 t + c2 t^2 + c3 t^3 of interval k, with t = x - x[k]."""
        h, delta, d0, d1 = self.h[k], self.delta[k], self.d[k], self.d[k + 1]
        return self.y[k], d0, (3 * delta - 2 * d0 - d1) / h, (d0 + d1 - 2 * delta) / h**2

    def __call__(self, xq: np.ndarray | float) -> np.ndarray:
        xq = np.asarray(xq, np.float64)
        k = np.clip(np.searchsorted(self.x, xq, side="right") - 1, 0, len(self.h) - 1)
        c0, c1, c2, c3 = self._coefficients(k)
        t = xq - self.x[k]
        return c0 + t * (c1 + t * (c2 + t * c3))

    def integral(self, lo: float, hi: float) -> float:
        """Exact integral over [lo, hi], a sub-interval of [x0, xn]."""
        k = np.arange(len(self.h))
        a = np.clip(lo, self.x[:-1], self.x[1:]) - self.x[:-1]
        b = np.clip(hi, self.x[:-1], self.x[1:]) - self.x[:-1]
        c0, c1, c2, c3 = self._coefficients(k)

        def primitive(t: np.ndarray) -> np.ndarray:
            return t * (c0 + t * (c1 / 2 + t * (c2 / 3 + t * c3 / 4)))

        return float(np.sum(primitive(b) - primitive(a)))


def _end_slope(h0: float, h1: float, delta0: float, delta1: float) -> float:
    """Three-point end slope, set to 0 against the data and capped at 3·delta0 past a turn."""
    d = ((2 * h0 + h1) * delta0 - h0 * delta1) / (h0 + h1)
    if np.sign(d) != np.sign(delta0):
        return 0.0
    if np.sign(delta0) != np.sign(delta1) and abs(d) > abs(3 * delta0):
        return 3 * delta0
    return float(d)


def _overlap(a: np.ndarray, b: np.ndarray, limits: tuple[float, float] | None) -> tuple[float, float] | None:
    lo, hi = max(a[0], b[0]), min(a[-1], b[-1])
    if limits is not None:
        lo, hi = max(lo, min(limits)), min(hi, max(limits))
    return (float(lo), float(hi)) if hi > lo else None


def _mean_gap(xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, limits) -> float | None:
    """Mean of (yb - ya) over the common x interval (within ``limits``), both as PCHIP of x; None if empty."""
    if len(xa) < 2 or len(xb) < 2:
        return None
    span = _overlap(xa, xb, limits)
    if span is None:
        return None
    lo, hi = span
    return (_Pchip(xb, yb).integral(lo, hi) - _Pchip(xa, ya).integral(lo, hi)) / (hi - lo)


def bd_rate(anchor: list[RdPoint], test: list[RdPoint], psnr_range: tuple[float, float] | None = None) -> float | None:
    """Bjøntegaard delta rate in percent: the test's mean size change at equal PSNR (negative saves bytes).

    The mean is of log10(bytes) over the PSNR interval (dB) both curves cover, cut to ``psnr_range``
    when given. None when that interval is empty or a curve has fewer than 2 efficient points.
    """
    ra, pa = _efficient(anchor)
    rb, pb = _efficient(test)
    gap = _mean_gap(pa, np.log10(ra), pb, np.log10(rb), psnr_range)
    return None if gap is None else float((10.0**gap - 1.0) * 100.0)


def bd_psnr(anchor: list[RdPoint], test: list[RdPoint], bytes_range: tuple[float, float] | None = None) -> float | None:
    """Bjøntegaard delta PSNR in dB: the test's mean PSNR gain at equal size (positive is better).

    The mean is over log10(bytes) on the interval both curves cover, cut to ``bytes_range`` (bytes)
    when given. None when that interval is empty or a curve has fewer than 2 efficient points.
    """
    ra, pa = _efficient(anchor)
    rb, pb = _efficient(test)
    limits = None if bytes_range is None else (math.log10(bytes_range[0]), math.log10(bytes_range[1]))
    return _mean_gap(np.log10(ra), pa, np.log10(rb), pb, limits)


def convex_hull(points: list[RdPoint]) -> list[RdPoint]:
    """Upper-left convex hull of (bytes, PSNR dB), in increasing bytes.

    Kept: the points that no other point, nor any mix of two, beats with more PSNR at the same or
    fewer bytes. Plain bytes, not log-bytes, as in Netflix's per-title/per-shot hull: sending one
    encode for a share of the time and another for the rest costs the share-weighted bytes and gives
    (about) the share-weighted PSNR, so the mixes lie on straight lines in plain bytes. Points on a
    hull edge (collinear) are kept; the cheapest and the best points are always on the hull.
    """
    usable = [p for p in points if p.bytes > 0 and math.isfinite(p.psnr)]
    hull: list[RdPoint] = []
    for p in sorted(usable, key=lambda p: (p.bytes, -p.psnr)):
        if hull and p.psnr <= hull[-1].psnr:
            continue  # dominated: more bytes, no more PSNR
        while len(hull) >= 2 and _below_chord(hull[-2], hull[-1], p):
            hull.pop()
        hull.append(p)
    return hull


def _below_chord(a: RdPoint, b: RdPoint, c: RdPoint) -> bool:
    """True when b lies strictly under the straight line from a to c, in (bytes, dB)."""
    return (b.bytes - a.bytes) * (c.psnr - a.psnr) - (b.psnr - a.psnr) * (c.bytes - a.bytes) > 0


# ----------------------------------------------------------------------------------------------- chart

COLOURS = ((200, 40, 40), (40, 90, 200), (40, 150, 60), (150, 90, 20), (140, 50, 160), (0, 140, 150))
MARKERS = ("circle", "square", "triangle", "diamond")
HULL_GREY = (150, 150, 150)
BAND_FILL = (255, 243, 205)


@dataclass(frozen=True)
class _Frame:
    """Plot box in pixels and the data ranges it shows: x as log10(kB), y as dB."""

    left: int
    top: int
    right: int
    bottom: int
    x0: float
    x1: float
    y0: float
    y1: float

    def px(self, kbytes: float, db: float) -> tuple[float, float]:
        fx = (math.log10(kbytes) - self.x0) / (self.x1 - self.x0)
        fy = (db - self.y0) / (self.y1 - self.y0)
        return self.left + fx * (self.right - self.left), self.bottom - fy * (self.bottom - self.top)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def _frame(curves: dict[str, list[RdPoint]], hull: list[RdPoint] | None, size: tuple[int, int]) -> _Frame:
    pts = [p for c in curves.values() for p in c if p.bytes > 0 and math.isfinite(p.psnr)] + list(hull or [])
    kb = [p.bytes / 1000 for p in pts] or [1.0, 10.0]
    db = [p.psnr for p in pts] or [30.0, 40.0]
    x0, x1 = math.log10(min(kb)), math.log10(max(kb))
    y0, y1 = min(db), max(db)
    xpad, ypad = max((x1 - x0) * 0.06, 0.05), max((y1 - y0) * 0.08, 0.25)
    w, h = size
    return _Frame(78, 46, w - 24, h - 58, x0 - xpad, x1 + xpad, y0 - ypad, y1 + ypad)


def _x_ticks(f: _Frame, mantissas: tuple[int, ...] = (1, 2, 5)) -> list[float]:
    """kB values at ``mantissas`` × 10^k inside the frame; every integer mantissa when that gives < 3."""
    ticks = [
        m * 10.0**e
        for e in range(math.floor(f.x0), math.ceil(f.x1) + 1)
        for m in mantissas
        if f.x0 <= math.log10(m * 10.0**e) <= f.x1
    ]
    if len(ticks) < 3 and len(mantissas) < 9:
        return _x_ticks(f, (1, 2, 3, 4, 5, 6, 7, 8, 9))
    return ticks


def _y_ticks(f: _Frame) -> list[float]:
    step = next(s for s in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0) if (f.y1 - f.y0) / s <= 8)
    return [k * step for k in range(math.ceil(f.y0 / step), math.floor(f.y1 / step) + 1)]


def _tick_text(v: float) -> str:
    return f"{v:g}" if v >= 1 or v == 0 else f"{v:.2g}"


def _axes(draw: ImageDraw.ImageDraw, f: _Frame, font, band: tuple[float, float] | None) -> None:
    if band is not None:
        lo, hi = max(min(band), f.y0), min(max(band), f.y1)
        if hi > lo:
            draw.rectangle([f.left, f.px(1, hi)[1], f.right, f.px(1, lo)[1]], fill=BAND_FILL)
    for kb in _x_ticks(f, (1, 2, 3, 4, 5, 6, 7, 8, 9)):  # unlabelled minor ticks show the log scale
        x = f.px(kb, f.y0)[0]
        draw.line([x, f.bottom, x, f.bottom + 3], fill="black")
    for kb in _x_ticks(f):
        x = f.px(kb, f.y0)[0]
        draw.line([x, f.top, x, f.bottom], fill=(228, 228, 228))
        draw.line([x, f.bottom, x, f.bottom + 5], fill="black")
        draw.text((x, f.bottom + 8), _tick_text(kb), fill="black", font=font, anchor="mt")
    for db in _y_ticks(f):
        y = f.px(1, db)[1]
        draw.line([f.left, y, f.right, y], fill=(228, 228, 228))
        draw.line([f.left - 5, y, f.left, y], fill="black")
        draw.text((f.left - 8, y), f"{db:g}", fill="black", font=font, anchor="rm")
    draw.rectangle([f.left, f.top, f.right, f.bottom], outline="black")
    draw.text(
        ((f.left + f.right) / 2, f.bottom + 30),
        "size, kB (1 kB = 1000 bytes), log scale",
        fill="black",
        font=font,
        anchor="mt",
    )
    draw.text((f.left - 8, f.top - 8), "Y-PSNR dB", fill="black", font=font, anchor="rb")


def _marker(draw: ImageDraw.ImageDraw, xy: tuple[float, float], shape: str, colour, r: float = 5) -> None:
    x, y = xy
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline="white")
    elif shape == "square":
        draw.rectangle([x - r + 1, y - r + 1, x + r - 1, y + r - 1], fill=colour, outline="white")
    elif shape == "triangle":
        draw.polygon([(x, y - r - 1), (x - r, y + r - 1), (x + r, y + r - 1)], fill=colour, outline="white")
    else:
        draw.polygon([(x, y - r - 1), (x + r, y), (x, y + r + 1), (x - r, y)], fill=colour, outline="white")


def _dashed(
    draw: ImageDraw.ImageDraw, pts: list[tuple[float, float]], fill, width: int, dash: float = 12, gap: float = 7
) -> None:
    """Polyline drawn as dashes of ``dash`` pixels with ``gap`` pixels between, the phase carried across vertices."""
    phase = 0.0  # distance along the pattern (dash + gap) at the start of the current segment
    for (xa, ya), (xb, yb) in zip(pts, pts[1:]):
        length = math.hypot(xb - xa, yb - ya)
        s = 0.0
        while s < length:
            pos = (phase + s) % (dash + gap)
            run = (dash - pos) if pos < dash else (dash + gap - pos)
            e = min(s + run, length)
            if pos < dash:
                t0, t1 = s / length, e / length
                draw.line(
                    [(xa + (xb - xa) * t0, ya + (yb - ya) * t0), (xa + (xb - xa) * t1, ya + (yb - ya) * t1)],
                    fill=fill,
                    width=width,
                )
            s = e
        phase = (phase + length) % (dash + gap)


def _legend(draw: ImageDraw.ImageDraw, f: _Frame, font, entries: list[tuple[str, str, tuple]]) -> None:
    """Entries (text, kind, colour) boxed in the plot's lower right, where RD curves rarely go."""
    line_h, swatch = 20, 34
    width = swatch + 14 + max(int(draw.textlength(t, font=font)) for t, _, _ in entries)
    x0, y0 = f.right - width - 12, f.bottom - line_h * len(entries) - 12
    draw.rectangle([x0, y0, f.right - 6, f.bottom - 6], fill="white", outline=(160, 160, 160))
    for i, (text, kind, colour) in enumerate(entries):
        y = y0 + 6 + i * line_h + line_h / 2
        sx = x0 + 6
        if kind == "band":
            draw.rectangle([sx, y - 6, sx + swatch, y + 6], fill=BAND_FILL, outline=(200, 190, 150))
        elif kind == "hull":
            _dashed(draw, [(sx, y), (sx + swatch, y)], HULL_GREY, 5, dash=10, gap=5)
        else:
            draw.line([sx, y, sx + swatch, y], fill=colour, width=2)
            _marker(draw, (sx + swatch / 2, y), kind, colour)
        draw.text((sx + swatch + 8, y), text, fill="black", font=font, anchor="lm")


def rd_chart(
    curves: dict[str, list[RdPoint]],
    path: str | Path,
    title: str,
    psnr_band: tuple[float, float] | None = None,
    hull: list[RdPoint] | None = None,
    size: tuple[int, int] = (900, 560),
) -> None:
    """PNG of RD curves: size in kB on a log x axis, Y-PSNR in dB up; ``size`` is (width, height) pixels.

    Each curve is a coloured polyline with markers in increasing bytes (all its points, dominated
    ones too); ``hull`` is drawn under them as a thick dashed grey line, ``psnr_band`` (dB) as a
    light band across the plot.
    """
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font, title_font = _font(13), _font(16)
    f = _frame(curves, hull, size)
    draw.text((size[0] / 2, 12), title, fill="black", font=title_font, anchor="mt")
    _axes(draw, f, font, psnr_band)
    entries: list[tuple[str, str, tuple]] = []
    if hull and len(hull) >= 2:
        _dashed(draw, [f.px(p.bytes / 1000, p.psnr) for p in sorted(hull, key=lambda p: p.bytes)], HULL_GREY, 5)
    for i, (name, points) in enumerate(curves.items()):
        colour, shape = COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)]
        pts = [
            f.px(p.bytes / 1000, p.psnr)
            for p in sorted(points, key=lambda p: p.bytes)
            if p.bytes > 0 and math.isfinite(p.psnr)
        ]
        if len(pts) >= 2:
            draw.line(pts, fill=colour, width=2, joint="curve")
        for xy in pts:
            _marker(draw, xy, shape, colour)
        entries.append((name, shape, colour))
    if hull:
        entries.append(("convex hull", "hull", HULL_GREY))
    if psnr_band is not None:
        entries.append((f"band {min(psnr_band):g} to {max(psnr_band):g} dB", "band", BAND_FILL))
    if entries:
        _legend(draw, f, font, entries)
    img.save(path)
