"""Live scheduling, without a clock: which path a chunk takes, and latency percentiles."""

from fractions import Fraction

from vsr_pipe.pipeline.deadline import LatencyHistogram, Pacer, PathChooser

FPS24 = 1 / 24


def simulate(chooser: PathChooser, true_cost, frames: int, interval: float = FPS24) -> tuple[list[float], list[int]]:
    """A stream at one frame per ``interval`` through one processor, one-frame chunks, on a
    simulated clock: each frame's latency (arrival to processed) and the path it took.
    ``true_cost(k, path)``: what frame k costs on that path."""
    free_at, latencies, paths = 0.0, [], []
    for k in range(frames):
        arrival = k * interval
        start = max(free_at, arrival)
        path = chooser.choose(now=start, oldest_arrival=arrival, frames=1)
        cost = true_cost(k, path)
        chooser.record(path, cost, 1)
        free_at = start + cost
        latencies.append(free_at - arrival)
        paths.append(path)
    return latencies, paths


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


def test_the_queue_stays_near_one_frame_with_a_model_dearer_than_the_frame_interval():
    # 640x360 at 24 fps on a small CPU: the model takes 60 ms (> 41.7 ms a frame), the light one 25.
    chooser = PathChooser(("full", "light", "bicubic"), budget_s=0.5, interval_s=FPS24)
    costs = (0.060, 0.025, 0.004)
    latencies, paths = simulate(chooser, lambda k, p: costs[p], 24 * 60)
    share = [paths.count(p) / len(paths) for p in range(3)]
    assert share[0] >= 0.4 and share[0] + share[1] == 1.0  # a learned model on every frame
    assert max(latencies[24:]) <= 2 * FPS24 + costs[0]  # about a frame of queue, never the deadline
    assert sorted(latencies)[len(latencies) // 2] <= 0.1


def test_a_light_model_that_drains_the_queue_is_taken_before_bicubic():
    # The light model is only a little faster than the frames come (35 ms for 41.7): the queue
    # drains slowly on it, and bicubic, which would drain it fast, is not used for that.
    chooser = PathChooser(("full", "light", "bicubic"), budget_s=0.5, interval_s=FPS24)
    latencies, paths = simulate(chooser, lambda k, p: (0.070, 0.035, 0.004)[p], 24 * 30)
    assert 2 not in paths and paths.count(0) > 0
    assert max(latencies) <= 0.2


def test_the_model_on_every_frame_when_it_keeps_up():
    chooser = PathChooser(("full", "light", "bicubic"), budget_s=0.5, interval_s=1 / 30)
    latencies, paths = simulate(chooser, lambda k, p: (0.02, 0.01, 0.002)[p], 300, interval=1 / 30)
    assert set(paths) == {0} and max(latencies) < 0.02 + 1e-9


def test_a_slow_spell_is_ridden_out_and_the_model_comes_back():
    chooser = PathChooser(("full", "light", "bicubic"), budget_s=0.3, interval_s=FPS24)
    # A job beside it triples every cost for frames 200..400.
    def cost(k, p):
        return (0.035, 0.02, 0.004)[p] * (3 if 200 <= k < 400 else 1)

    latencies, paths = simulate(chooser, cost, 700)
    assert max(latencies) <= 0.3  # the ceiling holds through the spell
    assert paths[250:400].count(0) < 150 / 4  # set aside while it cannot keep up (tried now and then)
    assert paths[450:].count(0) / 250 > 0.9  # and back once the CPU is back


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
