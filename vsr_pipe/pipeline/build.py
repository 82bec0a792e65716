"""Turn options into a rescaler: pick shipped weights, wrap them in engines."""

from __future__ import annotations

from ..config import PipelineOptions
from ..engines.base import make_engine, resolve_engine
from ..errors import InvalidOption
from ..weights.store import load_model, shipped_path
from .process import PlaneRescaler, ProcessPlan, neural_stages

CLASSIC_MODELS = {"bicubic": "bicubic", "lanczos": "lanczos", "bilinear": "bilinear"}
NEURAL_MODELS = ("espcn",)


def build_rescaler(options: PipelineOptions, plan: ProcessPlan) -> tuple[PlaneRescaler, str, str]:
    """The rescaler for ``plan``, a short description of the model chain, and the engine's name."""
    if options.model in CLASSIC_MODELS:
        kernel = CLASSIC_MODELS[options.model]
        return PlaneRescaler(ProcessPlan(plan.src, plan.dst, kernel)), kernel, "resample"
    if options.model not in NEURAL_MODELS:
        raise InvalidOption(f"model '{options.model}' is unknown: choose espcn, bicubic, lanczos or bilinear")
    factor = max(plan.scale_x, plan.scale_y)
    stages = neural_stages(factor)
    engine_options = resolve_engine(options.engine, options.device, options.precision, options.threads)
    models = [load_model(shipped_path(f"espcn_y_x{s}")) for s in stages]
    engines = [make_engine(engine_options, m, f"espcn_x{s}") for m, s in zip(models, stages)]
    chain = " + ".join(f"espcn x{s}" for s in stages) or "none"
    device = engines[0].device if engines else "cpu"
    halo = max((getattr(m, "receptive_radius", 8) for m in models), default=8)
    rescaler = PlaneRescaler(plan, engines, device=device, tile=options.tile, stage_scales=stages, halo=halo)
    return rescaler, chain, f"{engine_options.kind} ({engine_options.device})"
