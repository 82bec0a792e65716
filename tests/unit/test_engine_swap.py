"""Weights swap between chunks without rebuilding, on every engine that runs here: the output of
each chunk is that of plain PyTorch with that chunk's weights, and the engine cache is untouched."""

from __future__ import annotations

import sys

import pytest
import torch

from vsr_pipe.engines.base import make_engine
from vsr_pipe.engines.options import CompileOptions, OrtOptions, TorchOptions
from vsr_pipe.errors import WeightsError
from vsr_pipe.models.espcn import ESPCN
from vsr_pipe.models.rescaler import ArbitraryRescaler, BoundDown, BoundUp, RescaleGeometry
from vsr_pipe.weights.store import load_model, shipped_path

ENGINES = [
    pytest.param(TorchOptions(), id="torch"),
    pytest.param(OrtOptions(), id="onnxruntime"),
    pytest.param(CompileOptions(), id="compile", marks=pytest.mark.slow),  # compiling takes a minute here
]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_PIPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def entries(cache) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} if cache.exists() else {}


def espcn(state=None) -> torch.nn.Module:
    m = load_model(shipped_path("espcn_y_x2"))
    if state is not None:
        m.load_state_dict(state)
    return m.eval()


def perturbed(state, seed=1, scale=0.02):
    g = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=g) for k, v in state.items()}


@torch.no_grad()
def forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x)


def chunks(shape, n=3):
    g = torch.Generator().manual_seed(7)
    return [torch.rand(shape, generator=g) for _ in range(n)]


@pytest.mark.parametrize("options", ENGINES)
def test_espcn_weights_swap_a_b_a_between_chunks_without_rebuilding(cache, options):
    a = espcn().state_dict()
    a = {k: v.clone() for k, v in a.items()}
    b = perturbed(a)
    engine = make_engine(options, espcn(a), "espcn_x2")
    built = entries(cache)
    xs = chunks((2, 1, 24, 32))
    outs = [engine(xs[0])]
    engine.load_weights(b)
    outs.append(engine(xs[1]))
    engine.load_weights(a)
    outs.append(engine(xs[2]))
    for out, state, x in zip(outs, (a, b, a), xs):
        assert (out.cpu() - forward(espcn(state), x)).abs().max().item() <= 1e-4
    assert (forward(espcn(a), xs[1]) - outs[1]).abs().max().item() > 1e-3  # B really differs
    assert entries(cache) == built  # nothing exported, written or rebuilt by the swaps


def test_onnxruntime_prepare_builds_ahead_without_making_current(cache):
    a = {k: v.clone() for k, v in espcn().state_dict().items()}
    b = perturbed(a)
    engine = make_engine(OrtOptions(), espcn(a), "espcn_x2")
    x = torch.rand(1, 1, 20, 20)
    engine.prepare(b)
    assert (engine(x) - forward(espcn(a), x)).abs().max().item() <= 1e-4
    engine.load_weights(b)
    assert (engine(x) - forward(espcn(b), x)).abs().max().item() <= 1e-4


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * torch.log10(1 / ((a - b) ** 2).mean()).item()


def test_onnxruntime_int8_swaps_by_requantising_in_memory(cache):
    a = {k: v.clone() for k, v in espcn().state_dict().items()}
    b = perturbed(a)
    engine = make_engine(OrtOptions(precision="int8"), espcn(a), "espcn_x2")
    built = entries(cache)
    x = torch.rand(1, 1, 24, 24) * 0.6 + 0.2
    engine.load_weights(b)
    out = engine(x)
    assert psnr_db(out, forward(espcn(b), x)) >= 35  # INT8 of B, not of A
    assert psnr_db(out, forward(espcn(b), x)) > psnr_db(out, forward(espcn(a), x)) + 3
    assert entries(cache) == built


def test_the_exported_graph_names_its_initializers_by_state_dict_keys(cache):
    from vsr_pipe.engines.onnx_export import graph_initializers

    m = espcn()
    engine = make_engine(OrtOptions(), m, "espcn_x2")
    assert graph_initializers(engine.graph_path) == {k: tuple(v.shape) for k, v in m.state_dict().items()}
    # A fresh rescaler has many equal (zero) biases, which the exporter would merge into one
    # initializer if the graph were exported with these weights: each must keep its own name.
    net = ArbitraryRescaler(blocks=(1, 1))
    down = BoundDown(net, RescaleGeometry.for_factor(30, 41, 2.5, 2.5))
    names = set(graph_initializers(make_engine(OrtOptions(), down, "irn_down").graph_path))
    assert names <= set(down.state_dict())
    assert set(down.state_dict()) - names == {"model.latent_log_scale.0", "model.latent_log_scale.1"}  # unused by down


def test_wrong_weights_are_a_one_line_weights_error(cache):
    a = espcn().state_dict()
    for options in (TorchOptions(), OrtOptions()):
        engine = make_engine(options, espcn(), "espcn_x2")
        with pytest.raises(WeightsError, match="conv_fist.weight"):
            engine.load_weights({("conv_fist.weight" if k == "conv_first.weight" else k): v for k, v in a.items()})
        with pytest.raises(WeightsError, match=r"conv_last.bias.*\(3,\)"):
            engine.load_weights({**a, "conv_last.bias": torch.zeros(3)})
        with pytest.raises(WeightsError, match="lack 1 .*conv_body.bias"):
            engine.prepare({k: v for k, v in a.items() if k != "conv_body.bias"})


def rescaler(seed: int) -> ArbitraryRescaler:
    torch.manual_seed(seed)
    net = ArbitraryRescaler(blocks=(1, 1))
    for p in net.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    return net.eval()


@pytest.mark.parametrize(
    "options", [pytest.param(TorchOptions(), id="torch"), pytest.param(OrtOptions(), id="onnxruntime")]
)
@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
@pytest.mark.parametrize("direction", ["down", "up"])
def test_rescaler_directions_swap_with_the_net_or_the_bound_module_state(cache, options, direction):
    g = RescaleGeometry.for_factor(30, 41, 1.5, 2.5)
    net_a, net_b = rescaler(0), rescaler(1)

    def bound(net):  # z = 0 in the up direction: deterministic, so comparable
        return BoundDown(net, g) if direction == "down" else BoundUp(net, g, temperature=0.0)

    engine = make_engine(options, bound(rescaler(0)), f"irn_{direction}")
    built = entries(cache)
    xs = chunks((2, 1, *(g.hr if direction == "down" else g.lr)))
    outs = [engine(xs[0])]
    engine.load_weights(net_b.state_dict())  # the net's own keys
    outs.append(engine(xs[1]))
    engine.load_weights(bound(net_a).state_dict())  # the bound module's keys
    outs.append(engine(xs[2]))
    for out, net, x in zip(outs, (net_a, net_b, net_a), xs):
        assert (out - forward(bound(net), x)).abs().max().item() <= 1e-4
    assert (outs[1] - forward(bound(net_a), xs[1])).abs().max().item() > 1e-3
    assert entries(cache) == built


@pytest.mark.slow
def test_compile_falls_back_to_eager_with_one_warning_where_compilation_fails(monkeypatch):
    import torch._dynamo
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", ("/nonexistent/c++",))  # as on a machine without a compiler
    monkeypatch.setattr(inductor, "fx_graph_cache", False)
    torch._dynamo.reset()
    a = espcn().state_dict()
    engine = make_engine(CompileOptions(), espcn(a), "espcn_x2")
    x = torch.rand(1, 1, 19, 21)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        first = engine(x)
    assert not engine.compiled
    assert (first - forward(espcn(a), x)).abs().max().item() <= 1e-6
    engine.load_weights(perturbed(a))
    assert (engine(x) - forward(espcn(perturbed(a)), x)).abs().max().item() <= 1e-6
    torch._dynamo.reset()


def test_a_cached_graph_opens_without_parsing_it_again(tmp_path, monkeypatch):
    """The initializer names are kept beside the graph: a live run's start skips importing onnx."""
    from vsr_pipe.engines.onnx_export import export_graph, graph_initializers

    model = ESPCN(2)
    path = export_graph(model, tmp_path / "g.onnx")
    first = graph_initializers(path)
    assert (tmp_path / "g.onnx.names.json").is_file()
    monkeypatch.setitem(sys.modules, "onnx", None)  # any import of onnx now fails
    assert graph_initializers(path) == first == {k: tuple(v.shape) for k, v in model.state_dict().items()}
