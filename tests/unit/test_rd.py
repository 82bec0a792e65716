"""Rate–distortion maths: BD-rate and BD-PSNR (PCHIP), the convex hull, and the RD chart."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vsr_pipe.quality.rd import RdPoint, _efficient, _Pchip, bd_psnr, bd_rate, convex_hull, rd_chart

# libx265 presets measured with ffmpeg: the example data of the `bjontegaard` package's README.
ANCHOR = [RdPoint(b, p) for b, p in [(9487.76, 40.037), (4593.60, 38.615), (2486.44, 36.845), (1358.24, 34.851)]]
TEST = [RdPoint(b, p) for b, p in [(9787.80, 40.121), (4469.00, 38.651), (2451.52, 36.970), (1356.24, 34.987)]]


def _scaled(points: list[RdPoint], factor: float) -> list[RdPoint]:
    return [RdPoint(p.bytes * factor, p.psnr) for p in points]


def test_bd_rate_of_a_curve_against_itself_is_zero():
    assert bd_rate(ANCHOR, ANCHOR) == pytest.approx(0.0, abs=1e-12)
    assert bd_psnr(ANCHOR, ANCHOR) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("factor, expected", [(0.8, -20.0), (1.25, 25.0)])
def test_bd_rate_of_a_scaled_curve_is_the_scale(factor, expected):
    assert bd_rate(ANCHOR, _scaled(ANCHOR, factor)) == pytest.approx(expected, abs=0.1)


def test_bd_psnr_of_a_curve_half_a_db_up_is_half_a_db():
    up = [RdPoint(p.bytes, p.psnr + 0.5) for p in ANCHOR]
    assert bd_psnr(ANCHOR, up) == pytest.approx(0.5, abs=1e-9)
    assert bd_rate(ANCHOR, up) < 0


def test_no_overlap_gives_none_not_a_number():
    assert bd_rate(ANCHOR, TEST, psnr_range=(41.0, 45.0)) is None
    high = [RdPoint(p.bytes, p.psnr + 10) for p in ANCHOR]
    assert bd_rate(ANCHOR, high) is None
    assert bd_rate(ANCHOR, ANCHOR[:1]) is None
    assert bd_psnr(ANCHOR, TEST, bytes_range=(100, 1000)) is None


def test_psnr_range_restricts_the_interval():
    within = bd_rate(ANCHOR, TEST, psnr_range=(36.0, 38.0))
    full = bd_rate(ANCHOR, TEST)
    assert within is not None and full is not None and within != pytest.approx(full)
    # A range wider than the overlap changes nothing.
    assert bd_rate(ANCHOR, TEST, psnr_range=(0.0, 99.0)) == pytest.approx(full, abs=1e-12)


def test_bd_rate_matches_dense_trapezoid_integration():
    """A second method: mean log10-rate gap by trapezoids on 200,001 samples of the interpolants."""
    (ra, pa), (rb, pb) = _efficient(ANCHOR), _efficient(TEST)
    fa, fb = _Pchip(pa, np.log10(ra)), _Pchip(pb, np.log10(rb))
    q = np.linspace(max(pa[0], pb[0]), min(pa[-1], pb[-1]), 200_001)
    gap = np.diff(q) @ ((fb(q) - fa(q))[1:] + (fb(q) - fa(q))[:-1]) / 2 / (q[-1] - q[0])
    assert bd_rate(ANCHOR, TEST) == pytest.approx((10**gap - 1) * 100, abs=1e-6)


def test_bd_rate_matches_the_reference_pchip():
    """Values of scipy 1.17's ``PchipInterpolator.integrate`` (the method of ``bjontegaard``'s "pchip"),
    computed once outside this project on the README data above."""
    assert bd_rate(ANCHOR, TEST) == pytest.approx(-4.417485350589045, abs=1e-9)
    assert bd_psnr(ANCHOR, TEST) == pytest.approx(0.11969278542479489, abs=1e-9)


def test_pchip_interpolates_keeps_lines_and_does_not_overshoot():
    x = np.array([0.0, 1.0, 1.5, 4.0])
    assert _Pchip(x, 2 * x + 1)(np.linspace(-1, 5, 13)) == pytest.approx(2 * np.linspace(-1, 5, 13) + 1)
    y = np.array([0.0, 0.0, 1.0, 1.0])  # flat, step, flat: a cubic spline would dip and overshoot
    f = _Pchip(x, y)
    assert f(x) == pytest.approx(y)
    dense = f(np.linspace(0, 4, 1001))
    assert dense.min() >= -1e-12 and dense.max() <= 1 + 1e-12 and np.all(np.diff(dense) >= -1e-12)


def test_dominated_points_are_dropped_before_interpolation():
    worse = ANCHOR + [RdPoint(12_000, 39.0, "more bytes, less PSNR")]
    assert bd_rate(worse, TEST) == pytest.approx(bd_rate(ANCHOR, TEST), abs=1e-12)


def test_convex_hull_drops_points_under_it_and_dominated_ones_keeps_the_ends():
    cheap, mid, under, best = (
        RdPoint(100, 30.0, "a"),
        RdPoint(200, 34.0, "b"),
        RdPoint(300, 34.5, "c"),
        RdPoint(400, 38.0, "d"),
    )
    dominated = RdPoint(350, 33.0, "e")
    hull = convex_hull([best, under, dominated, mid, cheap])
    assert [p.label for p in hull] == ["a", "b", "d"]  # c lies under the chord b-d; e is beaten by b
    assert convex_hull([cheap, RdPoint(100, 29.0, "same bytes")]) == [cheap]
    collinear = RdPoint(300, 36.0, "on the edge")
    assert collinear in convex_hull([cheap, mid, collinear, best])


def test_rd_chart_writes_a_png_of_the_given_size(tmp_path):
    curves = {"direct": ANCHOR, "x2 + weights": TEST}
    path = tmp_path / "rd.png"
    rd_chart(curves, path, "test", psnr_band=(36.0, 38.0), hull=convex_hull(ANCHOR + TEST), size=(900, 560))
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (900, 560)
        assert len(img.getcolors(1 << 16)) > 10  # something was drawn
