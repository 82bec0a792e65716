"""The causal recurrent model: where it starts, what its state carries, and ONNX Runtime agreeing."""

import numpy as np
import pytest
import torch

from vsr_pipe.models.espcn import ESPCN
from vsr_pipe.models.temporal import WARMUP_STEPS, TemporalSR


def trained_looking(scale: int) -> TemporalSR:
    """A model whose recurrent cell is not at its zero start (random weights, fixed seed)."""
    torch.manual_seed(0)
    model = TemporalSR(scale, features=8, layers=1, state=4)
    torch.nn.init.constant_(model.gain, 0.5)
    return model.eval()


def test_an_untrained_cell_is_exactly_the_single_frame_espcn():
    torch.manual_seed(1)
    model = TemporalSR(2, features=8, layers=1, state=4).eval()
    frames = torch.rand(3, 1, 12, 16)
    with torch.no_grad():
        assert torch.allclose(model.run(frames), model.base(frames), atol=1e-6)  # batched vs one by one
    assert isinstance(model.base, ESPCN) and not any(p.requires_grad for p in model.base.parameters())


def test_the_output_depends_on_the_frames_before_and_a_reset_forgets_them():
    model = trained_looking(2)
    frames = torch.rand(4, 1, 12, 16)
    other = frames.clone()
    other[0] = torch.rand(1, 12, 16)  # a different first frame
    with torch.no_grad():
        a, b = model.run(frames), model.run(other)
        assert not torch.allclose(a[3], b[3])  # the state carried frame 0 into frame 3
        # After a reset (a cut, a seek, a split's start) frame 3 is what a fresh run makes of it.
        assert torch.equal(model.run(frames[3:]), model.run(other[3:]))


@pytest.mark.parametrize("scale", [2, 4])
def test_onnx_runtime_carries_the_state_as_torch_does(tmp_path, scale):
    ort = pytest.importorskip("onnxruntime")
    from vsr_pipe.engines.onnx_export import export_recurrent

    model = trained_looking(scale)
    path = export_recurrent(model, tmp_path / "temporal.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frames = torch.rand(4, 1, 10, 14)  # not the export's example size
    with torch.no_grad():
        want = model.run(frames).numpy()
        prev, prev_out, state = (t.numpy() for t in model.initial_state(frames[:1], WARMUP_STEPS))
    got = []
    for t in range(4):
        frame = frames[t : t + 1].numpy()
        out, state = session.run(None, {"frame": frame, "prev_frame": prev, "prev_out": prev_out, "state": state})
        got.append(out)
        prev, prev_out = frame, out
    mse = float(np.mean((np.concatenate(got) - want) ** 2))
    assert 10 * np.log10(1 / max(mse, 1e-20)) >= 50


def scenes(seed: int = 3) -> torch.Tensor:
    """Seven frames: a smooth scene panning a pixel a frame, then a cut to an unrelated one."""
    g = torch.Generator().manual_seed(seed)

    def smooth() -> torch.Tensor:
        return torch.nn.functional.interpolate(torch.rand(1, 1, 5, 10, generator=g), size=(20, 40), mode="bilinear")

    a, b = smooth(), 1 - smooth()
    first = [a[..., k : k + 24] for k in range(4)]
    second = [b[..., k : k + 24] for k in range(3)]
    return torch.cat(first + second)


def test_the_runner_carries_state_across_chunks_and_forgets_it_at_a_cut():
    from vsr_pipe.engines.recurrent import RecurrentRunner

    model = trained_looking(2)
    frames = scenes()
    whole = RecurrentRunner(model, "t")(frames)
    chunked = RecurrentRunner(model, "t")
    pieces = torch.cat([chunked(frames[i : i + 3]) for i in range(0, 7, 3)])
    assert torch.equal(whole, pieces)  # how the stream is cut into chunks does not matter
    assert chunked.resets == 2  # the first frame and the cut
    with torch.no_grad():
        assert torch.equal(whole[4:], model.run(frames[4:]))  # after the cut: a fresh start
        assert not torch.allclose(whole[1:4], model.base(frames[1:4]))  # within the scene: the past counts


def test_onnx_runtime_steps_the_runner_as_torch_does():
    from vsr_pipe.engines.recurrent import RecurrentRunner

    model = trained_looking(2)
    frames = scenes()
    ours, theirs = RecurrentRunner(model, "t")(frames), RecurrentRunner(model, "t", onnxruntime_threads=1)(frames)
    mse = float(((ours - theirs) ** 2).mean())
    assert 10 * np.log10(1 / max(mse, 1e-20)) > 50


def _ramp_folder(folder, size: int = 360):
    """One grey image whose level grows by half a level a column: a window's horizontal place shows
    in its pixel values."""
    from PIL import Image

    folder.mkdir()
    ramp = np.tile((np.arange(size) * 0.5).astype(np.uint8), (size, 1))
    Image.fromarray(ramp).save(folder / "ramp.png")
    return str(folder)


def _horizontal_speeds(data, n: int = 24) -> list[float]:
    """|columns a frame| of ``n`` sequences, from the ramp's levels (studio swing: 219/255 of them)."""
    speeds = []
    for _ in range(n):
        _, hr = data.sequence()
        middle = hr[:, 0, hr.shape[2] // 2].astype(np.float64) * 255 / (219 / 255) / 0.5  # columns
        speeds.append(float(np.abs(np.diff(middle, axis=0)).mean()))
    return speeds


def test_fast_training_sequences_move_further_and_slow_ones_stay_as_they_were(tmp_path):
    from vsr_pipe.train.temporal import MotionSequences

    folder = _ramp_folder(tmp_path / "images")
    slow = MotionSequences([folder], scale=2, lr_patch=16, frames=4, seed=3)
    again = MotionSequences([folder], scale=2, lr_patch=16, frames=4, seed=3, fast=0.0, fast_speed=40)
    assert all((a == b).all() for a, b in zip(slow.sequence(), again.sequence()))  # fast=0 draws nothing more
    fast = MotionSequences([folder], scale=2, lr_patch=16, frames=4, seed=3, fast=1.0, fast_speed=40)
    lr, hr = fast.sequence()
    assert lr.shape == (4, 1, 16, 16) and hr.shape == (4, 1, 32, 32)
    slow_speeds, fast_speeds = _horizontal_speeds(slow), _horizontal_speeds(fast)
    assert max(slow_speeds) <= 3.5 and max(fast_speeds) > 10 and max(fast_speeds) <= 40.5


def test_fast_windows_no_image_can_hold_are_refused_in_one_line(tmp_path):
    from vsr_pipe.train.temporal import MotionSequences

    folder = _ramp_folder(tmp_path / "images", size=200)
    with pytest.raises(ValueError, match="no training image is large enough for 40 px a frame over 8 frames"):
        MotionSequences([folder], scale=2, lr_patch=16, frames=8, fast=0.5, fast_speed=40)


def test_video_windows_are_consecutive_frames_and_none_are_drawn_without_videos(tmp_path):
    from vsr_pipe.models.matlab_resize import imresize
    from vsr_pipe.train.temporal import MotionSequences

    folder = _ramp_folder(tmp_path / "images")
    video = np.stack([np.full((60, 70), 10 * t, np.uint8) for t in range(12)])  # frame t is level 10 t
    plain = MotionSequences([folder], scale=2, lr_patch=16, frames=4, seed=3)
    unused = MotionSequences([folder], scale=2, lr_patch=16, frames=4, seed=3, videos=[video], video_share=0.0)
    assert all((a == b).all() for a, b in zip(plain.sequence(), unused.sequence()))
    real = MotionSequences([folder], scale=2, lr_patch=16, frames=4, seed=3, videos=[video], video_share=1.0)
    for _ in range(5):
        lr, hr = real.sequence()
        levels = np.round(hr[:, 0, 0, 0] * 255)
        assert lr.shape == (4, 1, 16, 16) and hr.shape == (4, 1, 32, 32)
        assert (np.diff(levels) == 10).all()  # consecutive frames of the video, in order
        assert np.allclose(lr[0, 0], np.round(imresize(hr[0, 0] * 255, 0.5)) / 255, atol=1e-6)


def test_a_missing_init_is_one_line_not_a_traceback(tmp_path):
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "vsr_pipe.train.temporal", "--init", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [f"--init {tmp_path / 'none.safetensors'}: weights file not found: {tmp_path / 'none.safetensors'}"]


def test_a_deeper_cell_started_from_a_shallower_one_computes_exactly_what_it_did():
    from vsr_pipe.train.temporal import deepen

    trained = trained_looking(2)
    deeper = TemporalSR(2, features=8, layers=3, state=4).eval()
    deepen(deeper, trained)
    frames = torch.rand(4, 1, 12, 16)
    with torch.no_grad():
        assert torch.equal(deeper.run(frames), trained.run(frames))
    with pytest.raises(ValueError):  # a deeper --init than --layers asks for is refused, not cut down
        deepen(TemporalSR(2, features=8, layers=0, state=4), trained)


def test_a_run_resumed_with_other_layers_or_absurd_layers_is_one_line(tmp_path):
    import subprocess
    import sys

    from vsr_pipe.train.checkpoint import save_checkpoint
    from vsr_pipe.train.temporal import CHECKPOINT

    model = TemporalSR(2, layers=3)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / CHECKPOINT, model, torch.optim.Adam(model.parameters()), {"step": 1, "args": {"layers": 3}})
    for extra, want in (([], "made with --layers 3, not 2"), (["--layers", "99"], "--layers takes 0 to")):
        done = subprocess.run([sys.executable, "-m", "vsr_pipe.train.temporal", "--out", str(run), *extra],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode != 0 and "Traceback" not in done.stderr and want in done.stderr
        assert want in done.stderr.strip().splitlines()[-1]  # the reason is the last line (argparse's usage above it)
