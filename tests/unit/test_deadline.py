"""Live scheduling, without a clock: which path a chunk takes, and latency percentiles."""

from fractions import Fraction

from vsr_pipe.pipeline.deadline import LatencyHistogram, Pacer, PathChooser


def test_the_model_while_it_fits_the_budget_then_the_cheaper_path_then_back():
    chooser = PathChooser(("espcn x2", "bicubic"), budget_s=0.1)
    chooser.record(0, 0.03, 1)
    chooser.record(1, 0.002, 1)
    assert chooser.choose(now=10.0, oldest_arrival=10.0, frames=1) == 0
    # The frame already waited 80 ms: 30 ms more would miss its deadline; bicubic's 2 ms fits.
    assert chooser.choose(now=10.08, oldest_arrival=10.0, frames=1) == 1
    # Encoding what is queued ahead takes the slack too.
    assert chooser.choose(now=10.0, oldest_arrival=10.0, frames=1, downstream_s=0.09) == 1
    # Nothing fits: the cheapest path, never a stall.
    assert chooser.choose(now=11.0, oldest_arrival=10.0, frames=1) == 1
    # A slow spell on the model: it is dropped, then retried once its estimate has decayed.
    chooser.record(0, 0.5, 1)
    assert chooser.choose(now=10.0, oldest_arrival=10.0, frames=1) == 1
    for _ in range(200):
        chooser.record(1, 0.002, 1)
    assert chooser.choose(now=10.0, oldest_arrival=10.0, frames=1) == 0
    assert chooser.counts == {"espcn x2": 2, "bicubic": 201}


def test_latency_percentiles_in_constant_memory():
    hist = LatencyHistogram()
    for ms in range(1, 101):
        hist.add(ms / 1000)
    s = hist.summary()
    assert s["frames"] == 100 and 50 <= s["p50_ms"] <= 51 and 95 <= s["p95_ms"] <= 96 and s["max_ms"] == 100
    hist.add(3600.0)  # an hour: counted in the last bin, not an index error
    assert hist.summary()["max_ms"] == 3_600_000 and hist.percentile(100) == LatencyHistogram.BINS + 1


def test_pacer_spaces_frames_by_their_timestamps():
    pacer = Pacer(Fraction(1, 90000))
    assert pacer.due(900, now=5.0) == 5.0
    assert pacer.due(900 + 3600, now=5.0) == 5.04
    assert pacer.due(None, now=7.0) == 7.0
