"""Turn options into a rescaler: pick shipped weights, wrap them in engines."""

from __future__ import annotations

from ..config import PipelineOptions
from ..engines.base import TorchOptions, make_engine
from ..errors import InvalidOption
from ..weights.store import load_model, shipped_path
from .process import PlaneRescaler, ProcessPlan, neural_stages

CLASSIC_MODELS = {"bicubic": "bicubic", "lanczos": "lanczos", "bilinear": "bilinear"}
NEURAL_MODELS = ("espcn",)


def describe_engine(options: PipelineOptions) -> str:
    if options.model in CLASSIC_MODELS:
        return "resample"
    return "torch" if options.engine in ("auto", "torch") else options.engine


def build_rescaler(options: PipelineOptions, plan: ProcessPlan) -> tuple[PlaneRescaler, str]:
    """The rescaler for ``plan`` and a short description of the model chain."""
    if options.model in CLASSIC_MODELS:
        kernel = CLASSIC_MODELS[options.model]
        return PlaneRescaler(ProcessPlan(plan.src, plan.dst, kernel)), kernel
    if options.model not in NEURAL_MODELS:
        raise InvalidOption(f"model '{options.model}' is unknown: choose espcn, bicubic, lanczos or bilinear")
    if options.engine not in ("auto", "torch"):
        raise InvalidOption(f"engine '{options.engine}' is not available yet: choose auto or torch")
    factor = max(plan.scale_x, plan.scale_y)
    stages = neural_stages(factor)
    engine_options = TorchOptions(device=options.device, precision=options.precision, threads=options.threads)
    engines = [make_engine(engine_options, load_model(shipped_path(f"espcn_y_x{s}")), f"espcn_x{s}") for s in stages]
    chain = " + ".join(f"espcn x{s}" for s in stages) or "none"
    device = engines[0].device if engines else "cpu"
    return PlaneRescaler(plan, engines, device=device), chain
