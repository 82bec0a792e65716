"""The causal recurrent model: where it starts, what its state carries, and ONNX Runtime agreeing."""

import numpy as np
import pytest
import torch

from vsr_pipe.models.espcn import ESPCN
from vsr_pipe.models.temporal import TemporalSR


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
        prev, prev_out, state = (t.numpy() for t in model.initial_state(frames[:1]))
    got = []
    for t in range(4):
        frame = frames[t : t + 1].numpy()
        out, state = session.run(None, {"frame": frame, "prev_frame": prev, "prev_out": prev_out, "state": state})
        got.append(out)
        prev, prev_out = frame, out
    mse = float(np.mean((np.concatenate(got) - want) ** 2))
    assert 10 * np.log10(1 / max(mse, 1e-20)) >= 50
