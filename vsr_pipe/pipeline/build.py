"""Turn options into a rescaler: pick shipped weights, wrap them in engines."""

from __future__ import annotations

import torch

from ..config import PipelineOptions
from ..engines.base import TorchOptions, make_engine, resolve_engine
from ..errors import InvalidOption
from ..models.rescaler import BoundDown, BoundUp, RescaleGeometry
from ..weights.store import load_model, shipped_path
from .process import PlaneRescaler, ProcessPlan, neural_stages

CLASSIC_MODELS = {"bicubic": "bicubic", "lanczos": "lanczos", "bilinear": "bilinear"}
NEURAL_MODELS = ("espcn", "irn")
# Video restores from z = 0, the latent's mode: a fresh z ~ N(0, 1) per frame would make each frame's
# detail differ from the last (temporal flicker), and the shipped rescaler restores best from z = 0.
RESTORE_TEMPERATURE = 0.0


def build_rescaler(options: PipelineOptions, plan: ProcessPlan, model: str) -> tuple[PlaneRescaler, str, str]:
    """The rescaler for ``plan`` with ``model`` (resolved, not "auto"), a short description of the
    model chain, and the engine's name."""
    if options.refine and model != "irn":
        raise InvalidOption("--refine works with --model irn's downscale only")
    if model in CLASSIC_MODELS:
        kernel = CLASSIC_MODELS[model]
        return PlaneRescaler(ProcessPlan(plan.src, plan.dst, kernel)), kernel, "resample"
    if model not in NEURAL_MODELS:
        raise InvalidOption(f"model '{model}' is unknown: choose auto, espcn, irn, bicubic, lanczos or bilinear")
    engine_options = resolve_engine(options.engine, options.device, options.precision, options.threads)
    engine_name = f"{engine_options.kind} ({engine_options.device})"
    if model == "irn":
        return _build_irn(options, plan, engine_options)
    factor = max(plan.scale_x, plan.scale_y)
    stages = neural_stages(factor)
    models = [load_model(shipped_path(f"espcn_y_x{s}")) for s in stages]
    engines = [make_engine(engine_options, m, f"espcn_x{s}") for m, s in zip(models, stages)]
    chain = " + ".join(f"espcn x{s}" for s in stages) or "none"
    device = engines[0].device if engines else "cpu"
    halo = max((getattr(m, "receptive_radius", 8) for m in models), default=8)
    rescaler = PlaneRescaler(plan, engines, device=device, tile=options.tile, stage_scales=stages, halo=halo)
    return rescaler, chain, engine_name


def _build_irn(options: PipelineOptions, plan: ProcessPlan, engine_options) -> tuple[PlaneRescaler, str, str]:
    """Luma through one direction of the invertible rescaler, bound to this frame geometry."""
    if options.tile:
        raise InvalidOption("--tile works with espcn only: irn resamples whole frames")
    src, dst = plan.src, plan.dst
    down = dst.width <= src.width and dst.height <= src.height
    hr, lr = (src, dst) if down else (dst, src)
    geometry = RescaleGeometry((hr.height, hr.width), (lr.height, lr.width))
    net = load_model(shipped_path("irn_y"))
    module = BoundDown(net, geometry) if down else BoundUp(net, geometry, temperature=RESTORE_TEMPERATURE)
    if options.refine:
        module, engine_options = _refined(options, geometry, net, down, engine_options)
    name = f"irn_{'down' if down else 'up'}_{hr.width}x{hr.height}_{lr.width}x{lr.height}"
    engine = make_engine(engine_options, module, name)
    chain = f"irn {'down' if down else 'up'} {geometry.factor_x:.4g}x{geometry.factor_y:.4g}"
    if options.refine:
        chain += f", LR refined in {options.refine} steps"
    engine_name = f"{engine_options.kind} ({engine_options.device})"
    return PlaneRescaler(plan, [engine], device=engine.device, stage_scales=[1]), chain, engine_name


def _refined(options: PipelineOptions, geometry: RescaleGeometry, net, down: bool, engine_options):
    """The down direction with server-side LR refinement; it needs autograd, so eager fp32 torch."""
    from ..models.refine import RefinedDown
    from ..quality.matlab_resize import imresize_matrix

    if not down:
        raise InvalidOption("--refine applies to irn's downscale (the server side), not to restoring")
    if options.engine not in ("auto", "torch"):
        raise InvalidOption(f"--refine runs on the torch engine (it needs gradients), not {options.engine}")
    torch_options = TorchOptions(engine_options.device, "fp32", options.threads, cuda_graphs=False)
    rows = torch.from_numpy(imresize_matrix(geometry.hr[0], geometry.lr[0]))
    cols = torch.from_numpy(imresize_matrix(geometry.hr[1], geometry.lr[1]))
    return RefinedDown(net, geometry, rows, cols, iters=options.refine), torch_options
