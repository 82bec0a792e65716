"""Per-chunk weights swapped in mid-stream: each output frame comes from the weights scheduled for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vsr_pipe
from vsr_pipe.config import WeightSchedule, WeightsSwap
from vsr_pipe.errors import WeightsError
from vsr_pipe.weights.store import load_model, save_model, shipped_path

ENGINES = ["torch", "onnxruntime"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The shipped ESPCN x2 (A) and a copy whose output is visibly brighter (B)."""
    folder = tmp_path_factory.mktemp("weights")
    a = shipped_path("espcn_y_x2")
    model = load_model(a)
    with torch.no_grad():
        model.conv_last.bias.add_(0.08)  # every output sample about +20 codes (before clipping)
    b = folder / "brighter.safetensors"
    save_model(model, b)
    return str(a), str(b)


def luma(src, engine, schedule=None) -> list[np.ndarray]:
    frames = vsr_pipe.frames(src, scale=2, model="espcn", engine=engine, chunk_frames=4, weights=schedule)
    return [f.to_ndarray()[: f.height].astype(int) for f in frames]  # the Y rows of a yuv420p frame


@pytest.mark.parametrize("engine", ENGINES)
def test_each_frame_comes_from_its_scheduled_weights(clip, weights, engine):
    a, b = weights
    src = clip("in.mp4", frames=9, audio=False)
    pts = list(src.pts)
    # B from frame 3 (inside the first 4-frame chunk: the chunk is cut there), A again from frame 6.
    schedule = WeightSchedule((WeightsSwap(pts[3], b), WeightsSwap(pts[6], a)))
    swapped = luma(str(src.path), engine, schedule)
    only_a = luma(str(src.path), engine)
    only_b = luma(str(src.path), engine, WeightSchedule((WeightsSwap(0, b),), by="chunk"))
    assert len(swapped) == len(only_a) == 9
    expected = ["a", "a", "a", "b", "b", "b", "a", "a", "a"]
    for i, (got, want) in enumerate(zip(swapped, expected)):
        right, wrong = (only_a[i], only_b[i]) if want == "a" else (only_b[i], only_a[i])
        assert np.abs(got - right).max() <= 1, f"frame {i}: not from weights {want}"
        assert np.abs(got - wrong).mean() > 5, f"frame {i}: weights A and B give the same frame"


def test_scheduled_weights_of_another_architecture_are_one_line_errors(clip, tmp_path):
    src = clip("in.mp4", frames=2, audio=False)
    schedule = WeightSchedule((WeightsSwap(0, str(shipped_path("espcn_y_x3"))),))
    with pytest.raises(WeightsError, match="model stage"):
        list(vsr_pipe.frames(str(src.path), scale=2, weights=schedule))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    with pytest.raises(WeightsError):
        list(vsr_pipe.frames(str(src.path), scale=2, weights=WeightSchedule((WeightsSwap(0, str(broken)),))))


def test_weights_still_on_their_way_are_waited_for_and_their_failure_ends_the_run(clip, weights):
    """A schedule entry may be a future: the model stage tells ``on_swap`` it has reached it, waits
    for it, and runs those frames with exactly those weights; a future that fails ends the run."""
    import threading
    from concurrent.futures import Future

    a, b = weights
    src = clip("in.mp4", frames=8, audio=False)
    pts = list(src.pts)
    reached, later = [], Future()

    def on_swap(entry: int) -> None:
        reached.append(entry)
        if entry == 1:  # only now, as a fetcher paced by the run would
            threading.Timer(0.2, later.set_result, (b,)).start()

    schedule = WeightSchedule((WeightsSwap(pts[0], a), WeightsSwap(pts[4], later)), base=a, on_swap=on_swap)
    swapped = luma(str(src.path), "torch", schedule)
    only_a, only_b = luma(str(src.path), "torch"), luma(str(src.path), "torch", WeightSchedule((WeightsSwap(0, b),)))
    assert reached == [0, 1] and len(swapped) == 8
    assert all(np.abs(got - want).max() <= 1 for got, want in zip(swapped, only_a[:4] + only_b[4:]))
    failing = Future()
    failing.set_exception(WeightsError("chunk_0001.safetensors: sha256 does not match"))
    schedule = WeightSchedule((WeightsSwap(pts[0], a), WeightsSwap(pts[4], failing)), base=a)
    with pytest.raises(WeightsError, match="chunk_0001"):
        luma(str(src.path), "torch", schedule)


def test_weights_that_arrive_early_are_prepared_by_the_thread_that_brought_them(clip, weights, monkeypatch):
    """ONNX Runtime builds a session per weights (seconds for a large model): for weights on their
    way it is built when they arrive, on the delivering thread, not at the swap on the run's."""
    import threading
    from concurrent.futures import Future

    from vsr_pipe.engines.onnxruntime_engine import OrtEngine

    a, b = weights
    src = clip("in.mp4", frames=8, audio=False)
    pts = list(src.pts)
    builders: list[str] = []
    running = threading.Event()
    real_open = OrtEngine._open

    def recording_open(self, arrays):
        if running.is_set():
            builders.append(threading.current_thread().name)
        return real_open(self, arrays)

    monkeypatch.setattr(OrtEngine, "_open", recording_open)
    later = Future()

    def on_swap(entry: int) -> None:
        if entry == 0:  # the run has started: B arrives while chunk 0 plays
            running.set()
            fetcher = threading.Thread(target=later.set_result, args=(b,), name="fetcher")
            fetcher.start()
            fetcher.join()  # set_result runs the done-callbacks on the fetcher

    schedule = WeightSchedule((WeightsSwap(pts[0], a), WeightsSwap(pts[4], later)), base=a, on_swap=on_swap)
    swapped = luma(str(src.path), "onnxruntime", schedule)
    running.clear()
    only_a = luma(str(src.path), "onnxruntime")
    only_b = luma(str(src.path), "onnxruntime", WeightSchedule((WeightsSwap(0, b),)))
    assert builders == ["fetcher"]  # B's session; none built on the run's thread at the swap
    assert all(np.abs(got - want).max() <= 1 for got, want in zip(swapped, only_a[:4] + only_b[4:]))
