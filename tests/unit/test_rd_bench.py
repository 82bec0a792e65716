"""bench/rd.py weighs the ladder it ships against the same ladder without weights, at equal bytes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from vsr_pipe.quality.rd import RdPoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rd():
    # Loaded from its file, as the benches are run: tests do not import bench.
    spec = importlib.util.spec_from_file_location("bench_rd", ROOT / "bench" / "rd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def curve(points: list[tuple[float, float]]) -> list[RdPoint]:
    return [RdPoint(b, db) for b, db in points]


def test_the_shipped_hull_is_measured_against_the_ladder_without_weights(rd, tmp_path):
    # Direct coding gives 26-31 dB between 10 and 20 kB; the x2 and x3 LR + ESPCN rungs sit above
    # it there, and each package is its LR + 1 dB for 5 % more bytes.
    direct = curve([(10_000, 26.0), (20_000, 31.0), (40_000, 36.0), (80_000, 41.0)])
    x2 = curve([(8_000, 26.5), (12_000, 29.0), (18_000, 31.5), (30_000, 34.0)])
    x3 = curve([(6_000, 25.5), (9_000, 27.5), (13_000, 29.2), (20_000, 30.5)])
    package = {k: [RdPoint(p.bytes * 1.05, p.psnr + 1.0) for p in c] for k, c in (("x2", x2), ("x3", x3))}
    curves = {
        "direct x264": direct,
        "x2 LR+ESPCN (pipeline) x264": x2,
        "x2 package x264": package["x2"],
        "x3 LR+ESPCN (pipeline) x264": x3,
        "x3 package x264": package["x3"],
    }
    from vsr_pipe.quality.rd import convex_hull

    shipped = convex_hull([p for c in (direct, package["x2"], package["x3"]) for p in c])
    ladder = tmp_path / "ladder_x264"  # the ladder's own direct candidates: the anchor
    ladder.mkdir()
    candidates = [
        {"kind": "direct", "name": f"direct_{i}", "bytes": p.bytes, "psnr": p.psnr} for i, p in enumerate(direct)
    ]
    (ladder / "ladder.json").write_text(json.dumps({"candidates": candidates}))
    rows = {r["curve"]: r for r in rd.tabulate("clip", "libx264", curves, shipped, tmp_path)}

    hull = rows["hull (shipped)"]
    # Each package gains a little under 1 dB at its own bytes (it pays 5 % more); the shipped hull
    # gains as much over the plain hull at the low rates, where neither ships a direct rung.
    for name in ("x2 package x264", "x3 package x264"):
        assert 0.7 < rows[name]["bd_psnr_vs_generic_low"] < 1.0
    assert 0.7 < hull["bd_psnr_vs_generic_low"] < 1.0
    # At the top both ladders ship the same direct rung, which gains nothing: over all rates, less.
    assert 0 < hull["bd_psnr_vs_generic_all"] < hull["bd_psnr_vs_generic_low"]
    assert json.loads((tmp_path / "rows_x264.json").read_text())[-1]["curve"] == "hull (shipped)"
    assert (tmp_path / "rd_x264.png").stat().st_size > 0


def test_the_plain_hull_keeps_direct_rungs_where_they_beat_the_lr(rd):
    direct = curve([(10_000, 26.0), (40_000, 40.0)])
    x2 = curve([(8_000, 27.0), (40_000, 35.0)])
    plain = rd.plain_hull({"x2 LR+ESPCN (pipeline) x264": x2, "x2 package x264": curve([(8_000, 30.0)])}, direct)
    assert (40_000, 40.0) in [(p.bytes, p.psnr) for p in plain]
    assert all(p.psnr != 30.0 for p in plain)  # no package point in the plain ladder
