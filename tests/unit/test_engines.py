"""Every engine gives the frames PyTorch on CPU gives; the ONNX graph's parity always runs."""

from __future__ import annotations

import pytest
import torch

from vsr_pipe.engines.base import make_engine, resolve_engine
from vsr_pipe.engines.options import OrtOptions, TorchOptions
from vsr_pipe.models.espcn import ESPCN

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_PIPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def model(scale=2, seed=0):
    torch.manual_seed(seed)
    m = ESPCN(scale)
    for p in m.parameters():
        p.data.normal_(0, 0.1)
    return m.eval()


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("shape", [(1, 1, 17, 23), (3, 1, 36, 64)])
def test_onnxruntime_matches_torch_fp32(cache, scale, shape):
    m = model(scale)
    x = torch.rand(shape)
    ref = make_engine(TorchOptions(), m, f"t{scale}")(x)
    out = make_engine(OrtOptions(), m, f"espcn_x{scale}")(x)
    assert out.shape == ref.shape == (shape[0], 1, shape[2] * scale, shape[3] * scale)
    assert (out - ref).abs().max().item() <= 1e-4


def test_engine_cache_is_reused_and_a_corrupt_entry_is_rebuilt(cache):
    m = model()
    first = make_engine(OrtOptions(), m, "espcn_x2")
    assert not first.reused
    second = make_engine(OrtOptions(), m, "espcn_x2")
    assert second.reused
    (entry,) = cache.glob("*.onnx")
    entry.write_bytes(b"garbage")
    third = make_engine(OrtOptions(), m, "espcn_x2")
    x = torch.rand(1, 1, 8, 8)
    assert torch.allclose(third(x), first(x), atol=1e-5)


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_new_weights_reuse_the_cached_graph_and_swap_between_chunks(cache):
    a, b = model(seed=0), model(seed=1)
    engine = make_engine(OrtOptions(), a, "espcn_x2")
    entries = sorted(cache.iterdir())
    x = torch.rand(1, 1, 12, 12)
    before = engine(x)
    engine.load_weights(b.state_dict())
    after = engine(x)
    assert sorted(cache.iterdir()) == entries and len(list(cache.glob("*.onnx"))) == 1
    assert torch.allclose(after, b(x), atol=1e-4) and not torch.allclose(before, after, atol=1e-3)
    other = make_engine(OrtOptions(), b, "espcn_x2")  # other weights, same architecture: one entry
    assert other.reused and sorted(cache.iterdir()) == entries


def test_auto_picks_onnxruntime_on_cpu():
    assert resolve_engine("auto", "cpu", "fp32", 0).kind == "onnxruntime"
    assert resolve_engine("torch", "cpu", "fp32", 0).kind == "torch"
    assert resolve_engine("auto", "cpu", "auto", 0).precision == "fp32"
    assert resolve_engine("compile", "cpu", "fp32", 0).kind == "compile"


@pytest.mark.needs_cuda
def test_auto_on_a_gpu_is_torch_fp16_with_cuda_graphs_matching_cpu_fp32():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    options = resolve_engine("auto", "auto", "auto", 0)
    assert (options.kind, options.precision, options.cuda_graphs) == ("torch", "fp16", True)
    m = model()
    ref = make_engine(TorchOptions(), m, "t")(torch.rand(4, 1, 90, 160, generator=torch.Generator().manual_seed(1)))
    gpu = make_engine(options, model(), "espcn_x2")
    x = torch.rand(4, 1, 90, 160, generator=torch.Generator().manual_seed(1))
    first, again = gpu(x).cpu(), gpu(x).cpu()  # the second call replays the captured graph
    assert gpu.use_graphs and torch.equal(first, again)
    assert psnr_db(first, ref) >= 50
    short = gpu(x[:1]).cpu()  # a shorter last chunk gets its own graph
    assert torch.allclose(short, first[:1], atol=1e-3)


@pytest.mark.needs_cuda
def test_cuda_pipeline_ring_slots_are_pinned():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from vsr_pipe.io.layout import FrameLayout
    from vsr_pipe.pipeline.ring import ChunkRing

    layout = FrameLayout(64, 36, "yuv420p10le", bits=10)
    ring = ChunkRing(layout, 4, 2, pinned=True)
    chunk = ring.acquire(__import__("threading").Event())
    assert all(torch.from_numpy(p.view("int16")).is_pinned() for p in chunk.planes)
    assert chunk.planes[0].dtype.name == "uint16" and chunk.planes[0].shape == (4, 36, 64)


def test_tensorrt_is_refused_in_one_line_where_it_is_missing():
    from vsr_pipe.engines.tensorrt_engine import available
    from vsr_pipe.errors import EngineUnavailable

    if available():
        pytest.skip("TensorRT and a GPU are present")
    with pytest.raises(EngineUnavailable, match="TensorRT"):
        make_engine(resolve_engine("tensorrt", "cpu", "fp16", 0), model(), "espcn_x2")


@pytest.mark.needs_cuda
def test_tensorrt_fp16_matches_torch_fp32():
    from vsr_pipe.engines.tensorrt_engine import available

    if not available():
        pytest.skip("needs TensorRT and a CUDA GPU")
    m = model()
    x = torch.rand(2, 1, 64, 96)
    ref = make_engine(TorchOptions(), m, "t")(x)
    out = make_engine(resolve_engine("tensorrt", "cuda", "fp16", 0), m, "espcn_x2")(x).cpu()
    mse = ((out - ref) ** 2).mean().item()
    assert 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-20))).item() >= 50


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a - b) ** 2).mean().item()
    return 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-20))).item()


def test_onnxruntime_int8_stays_within_40_db_of_fp32(cache):
    from vsr_pipe.weights.store import load_model, shipped_path

    m = load_model(shipped_path("espcn_y_x2"))  # real weights: random ones say nothing about quantisation
    x = torch.rand(1, 1, 24, 24) * 0.6 + 0.2
    ref = make_engine(TorchOptions(), m, "t")(x)
    out = make_engine(OrtOptions(precision="int8"), m, "espcn_x2")(x)
    assert out.shape == ref.shape
    assert psnr_db(out, ref) >= 40
    (graph,) = cache.glob("*.onnx")  # only the architecture's graph: INT8 is quantised in memory
    assert graph.name.endswith("-fp32.onnx")


def test_int8_quantises_the_convolution_between_two_tanh_statically(cache):
    """ESPCN's middle layer in INT8 with ranges fixed by tanh (no calibration data); its first and
    last layers, where a small input or output range costs dB, stay fp32."""
    import onnx

    from vsr_pipe.engines.onnx_export import cached_graph, weight_arrays
    from vsr_pipe.engines.ort_session import graph_initializers, quantise
    from vsr_pipe.weights.store import load_model, shipped_path

    m = load_model(shipped_path("espcn_y_x2"))
    graph, _ = cached_graph("espcn_x2", m)
    proto = onnx.load_from_string(quantise(graph, weight_arrays(m.state_dict(), graph_initializers(graph))))
    convs = {n.name: list(n.input) for n in proto.graph.node if n.op_type == "Conv"}
    made_by = {out: n.op_type for n in proto.graph.node for out in n.output}
    quantised = {name for name, inputs in convs.items() if made_by.get(inputs[0]) == "DequantizeLinear"}
    assert quantised == {"/conv_body/Conv"}
    scales = {t.name: float(onnx.numpy_helper.to_array(t)) for t in proto.graph.initializer if t.name.endswith("_scale")
              and t.dims == []}  # fmt: skip
    assert any(abs(v - 2 / 255) < 1e-6 for v in scales.values())  # [-1, 1] over 255 steps: tanh's range


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_frame_run_as_two_bands_is_the_whole_frame_exactly(cache, precision):
    """The host engine splits a frame into two bands on two cores; overlapping by the receptive
    radius, every output row is the one the whole frame gives."""
    import numpy as np

    from vsr_pipe.engines.onnx_export import cached_graph, weight_arrays
    from vsr_pipe.engines.ort_session import HostOrtEngine, graph_initializers

    m = model(3)
    graph, _ = cached_graph("espcn_x3", m)
    weights = weight_arrays(m.state_dict(), graph_initializers(graph))
    options = OrtOptions(precision=precision, threads=2)
    banded = HostOrtEngine(graph, weights, options, "banded", radius=m.receptive_radius)
    whole = HostOrtEngine(graph, weights, options, "whole")
    x = np.random.default_rng(0).random((1, 1, 97, 80), dtype=np.float32)
    assert banded._bands == 2 and whole._bands == 1
    np.testing.assert_array_equal(banded(x), whole(x))
    assert banded(x).shape == (1, 1, 291, 240)


@pytest.mark.parametrize("factor", [(2.0, 2.0), (1.5, 2.5)])
def test_onnxruntime_runs_both_directions_of_the_rescaler_like_torch(cache, factor):
    from vsr_pipe.models.rescaler import ArbitraryRescaler, BoundDown, BoundUp, RescaleGeometry

    torch.manual_seed(0)
    net = ArbitraryRescaler(blocks=(1, 1))
    for p in net.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    g = RescaleGeometry.for_factor(30, 41, *factor)
    x = torch.rand(2, 1, *g.hr)
    down = [make_engine(o, BoundDown(net, g), "irn_down") for o in (TorchOptions(), OrtOptions())]
    assert (down[0](x) - down[1](x)).abs().max().item() <= 1e-4
    lr = torch.rand(2, 1, *g.lr)
    up = [make_engine(o, BoundUp(net, g, temperature=0.0), "irn_up") for o in (TorchOptions(), OrtOptions())]
    assert (up[0](lr) - up[1](lr)).abs().max().item() <= 1e-4  # z = 0: deterministic, so comparable
    drawn = make_engine(OrtOptions(), BoundUp(net, g), "irn_up")(lr)
    assert drawn.shape == (2, 1, *g.hr) and not torch.allclose(drawn, up[1](lr))  # z drawn inside the graph
