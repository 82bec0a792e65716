"""The run plan: a pure function from options and stream facts to everything a run does.

Sizes, the model and its direction, the stages Y goes through, the engine asked for, the weights
schedule, the tag the output carries and the notes the user is told: every scale rule and every irn
rule is decided here, once, with no I/O, so it can be tested without a video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..config import IRN_MAX_UP, MAX_OUTPUT_SIDE, LiveOptions, PipelineOptions, Scale, WeightSchedule, output_size
from ..errors import InvalidOption
from ..io.base import StreamFacts
from ..io.layout import FrameLayout
from ..io.tags import RescaleTag

CLASSIC_MODELS = ("bicubic", "lanczos", "bilinear")
LIGHT_FEATURES = (16, 8)  # the light ESPCN a live run falls back to before bicubic
NEURAL_MODELS = ("espcn", "irn", "temporal")
IRN_WEIGHTS = "irn_y"


@dataclass(frozen=True)
class LumaStage:
    """One model call on Y. ``kind``: "espcn" (integer sub-pixel ``factor``), "irn_down" or "irn_up"
    (the rescaler bound to ``hr`` and ``lr`` sizes, (height, width) each); ``weights``: the shipped
    weights' name, or a weight schedule's ``base``: a weights file's path or its bytes in memory."""

    kind: str
    weights: str | bytes
    factor: int = 1
    hr: tuple[int, int] = (0, 0)
    lr: tuple[int, int] = (0, 0)

    def describe(self) -> str:
        if self.kind in ("espcn", "temporal"):
            return f"{self.kind} x{self.factor}"
        fx, fy = self.hr[1] / self.lr[1], self.hr[0] / self.lr[0]
        return f"irn {self.kind[4:]} {fx:.4g}x{fy:.4g}"


@dataclass(frozen=True)
class EngineRequest:
    """The engine as asked for; resolved against the machine when the stages are built."""

    engine: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0


@dataclass(frozen=True)
class RunPlan:
    """Everything one run does, decided before a frame moves."""

    src: FrameLayout
    dst: FrameLayout
    model: str  # resolved: espcn, irn, bicubic, lanczos or bilinear
    luma: tuple[LumaStage, ...]  # model calls on Y, in order; () for the classic kernels
    kernel: str  # the resampler for chroma and for Y's last step to the exact size
    engine: EngineRequest
    chunk_frames: int
    ring_slots: int
    tile: int = 0
    refine: int = 0
    weights: WeightSchedule | None = None
    output_tag: RescaleTag | None = None  # written into the output: it is a learned downscale
    notes: tuple[str, ...] = ()  # what was assumed, for the user
    live: LiveOptions | None = None
    realtime: bool = False  # pace the input at its frame rate
    # Cheaper paths for chunks that would miss their deadline, dearest first: light weights' names, "bicubic".
    fallbacks: tuple[str, ...] = ()

    @property
    def scale(self) -> Scale:
        return Scale(self.dst.width / self.src.width, self.dst.height / self.src.height)

    @property
    def chain(self) -> str:
        """The model chain in words, e.g. "espcn x3 + espcn x2", "irn down 2x2", "bicubic"."""
        if not self.luma:
            return self.kernel if self.model in CLASSIC_MODELS else "none"
        text = " + ".join(stage.describe() for stage in self.luma)
        return text + (f", LR refined in {self.refine} steps" if self.refine else "")


def neural_stages(factor: float) -> tuple[int, ...]:
    """Integer sub-pixel stages whose product is the smallest one >= ``factor`` (up to 8).

    1 needs none; up to 4 is one stage (the next integer); beyond, two stages (x3 x2, x4 x2).
    """
    if factor <= 1.0 + 1e-9:
        return ()
    if factor <= 4.0 + 1e-9:
        return (int(math.ceil(factor - 1e-9)),)
    if factor <= 6.0 + 1e-9:
        return (3, 2)
    return (4, 2)


def make_plan(
    options: PipelineOptions,
    facts: StreamFacts,
    out_format: FrameLayout,
    irn_weights_id: str = "",
    shipped: frozenset[str] = frozenset(),
) -> RunPlan:
    """Plan a run of ``options`` over a stream with ``facts``, writing ``out_format``'s pixel format.

    ``irn_weights_id`` names the shipped rescaler weights (a hash prefix) for the output's tag;
    ``shipped`` the names of the weights there are (a live run's light fallback is one of them).
    Raises :class:`InvalidOption` for a size, factor or combination that cannot be run.
    """
    src = facts.layout
    tag = facts.rescale_tag or (RescaleTag.parse(options.rescale_tag) if options.rescale_tag else None)
    model = options.model if options.model != "auto" else ("irn" if tag else "espcn")
    if model not in CLASSIC_MODELS + NEURAL_MODELS:
        raise InvalidOption(
            f"model '{model}' is unknown: choose auto, espcn, temporal, irn, bicubic, lanczos or bilinear"
        )
    align_x, align_y = 1 << out_format.chroma_shift_x, 1 << out_format.chroma_shift_y
    w, h = _output_size(options, src, tag if model == "irn" else None, align_x, align_y, out_format.pix_fmt)
    shrinking = w <= src.width and h <= src.height  # for irn: its learned downscale, else its inverse
    notes: list[str] = []
    if options.size is not None:
        _check_size(src, w, h, model, align_y, notes)
    output_tag = None
    if model == "irn":
        w, h, output_tag = _irn_size(src, w, h, shrinking, align_x, align_y, tag, facts.name, irn_weights_id, notes)
    _check_combination(options, model, shrinking)
    dst = replace(out_format, width=w, height=h)
    luma = _luma_stages(model, src, dst, shrinking)
    if options.model == "auto" and _temporal_wins(options, luma, shipped):
        model, luma = "temporal", (replace(luma[0], kind="temporal", weights=temporal_weights(luma[0].factor)),)
    if model == "temporal":
        _check_temporal(options, luma, shipped)
    if options.weights is not None and len(luma) != 1:
        raise InvalidOption(f"a weights schedule needs exactly one model stage; {model} here has {len(luma)}")
    if options.weights is not None and options.weights.base:  # the stage is built from the schedule's own model
        luma = (replace(luma[0], weights=options.weights.base),)
    live = options.live
    return RunPlan(
        src=src,
        dst=dst,
        model=model,
        luma=luma,
        kernel=model if model in CLASSIC_MODELS else "bicubic",
        engine=EngineRequest(options.engine, options.device, options.precision, options.threads),
        # Live: a frame waits for no more than one other before the model sees it.
        chunk_frames=options.chunk_frames
        if live is None
        else (1 if options.chunk_frames > 2 else options.chunk_frames),
        ring_slots=options.ring_slots,
        tile=options.tile,
        refine=options.refine,
        weights=options.weights,
        output_tag=output_tag,
        notes=tuple(notes),
        live=live,
        realtime=options.realtime,
        fallbacks=_fallbacks(luma, shipped) if live is not None and live.fallback else (),
    )


def _output_size(
    options: PipelineOptions, src: FrameLayout, tag: RescaleTag | None, align_x: int, align_y: int, pix_fmt: str
) -> tuple[int, int]:
    """The size asked for: ``size``, else ``scale``, else the size a rescaling tag records, else x2."""
    if options.size is not None:
        w, h = options.size
        if w % align_x or h % align_y:
            raise InvalidOption(
                f"size {w}x{h} does not fit pixel format {pix_fmt}: use multiples of {align_x}x{align_y}"
            )
    elif options.scale is not None:
        w, h = output_size(src.width, src.height, options.scale, align_x, align_y)
    elif tag is not None:
        w, h = output_size(tag.hr[0], tag.hr[1], Scale(1, 1), align_x, align_y)
    else:
        w, h = output_size(src.width, src.height, Scale(2, 2), align_x, align_y)
    if max(w, h) > MAX_OUTPUT_SIDE:
        raise InvalidOption(f"output {w}x{h} is too large: at most {MAX_OUTPUT_SIDE} pixels per side")
    return w, h


def _check_size(src: FrameLayout, w: int, h: int, model: str, align_y: int, notes: list[str]) -> None:
    """A size obeys the scale rule of ``model`` for the factors it implies (irn's, which rounds to
    the factors it takes, are in :func:`_irn_size`); one that stretches the picture (beyond
    rounding: the pixel format's grid, and a source pixel) gets a note."""
    fx, fy = w / src.width, h / src.height
    if model != "irn":
        factors = f"{fx:.3g}" if abs(fx - fy) < 5e-4 else f"{fx:.3g}x{fy:.3g}"
        Scale(fx, fy).check_for(model, what=f"size {w}x{h} from {src.width}x{src.height} (a scale of {factors})")
    if abs(h - w * src.height / src.width) > align_y + fy:
        notes.append(
            f"size {w}x{h} changes the aspect ratio of {src.width}x{src.height} "
            f"({src.width / src.height:.3g}:1 -> {w / h:.3g}:1): the picture is stretched"
        )


def _irn_size(
    src: FrameLayout,
    w: int,
    h: int,
    shrinking: bool,
    align_x: int,
    align_y: int,
    tag: RescaleTag | None,
    name: str,
    weights_id: str,
    notes: list[str],
) -> tuple[int, int, RescaleTag | None]:
    """Fit the size to the factors irn takes; note what was assumed; the output's tag (downscales)."""
    src_w, src_h = src.width, src.height
    if shrinking:  # the learned downscale
        # Rounding to the pixel format's alignment must not push the factor past what irn takes.
        while src_w / w > IRN_MAX_UP + 1e-9:
            w += align_x
        while src_h / h > IRN_MAX_UP + 1e-9:
            h += align_y
        return w, h, RescaleTag(IRN_WEIGHTS, weights_id, (src_w, src_h), (w, h))
    if w < src_w or h < src_h:
        raise InvalidOption(f"irn goes {src_w}x{src_h} -> {w}x{h}: both sides must shrink, or both grow")
    if max(w / src_w, h / src_h) > IRN_MAX_UP + 1e-9:
        raise InvalidOption(f"irn restores by at most {IRN_MAX_UP:g}x per side, not {w}x{h} from {src_w}x{src_h}")
    factor = f"{w / src_w:.4g}x{h / src_h:.4g}"
    if tag is None:
        notes.append(
            f"{name} has no rescaling tag: assuming an irn downscale by {factor} (restoring {src_w}x{src_h} -> {w}x{h})"
        )
    elif tag.lr != (src_w, src_h) or tag.hr != (w, h):
        notes.append(
            f"the rescaling tag says {tag.hr[0]}x{tag.hr[1]} -> {tag.lr[0]}x{tag.lr[1]}; "
            f"restoring {src_w}x{src_h} -> {w}x{h} as asked (factor {factor})"
        )
    elif tag.weights and weights_id and tag.weights != weights_id:
        notes.append(f"{name} was made with other irn weights ({tag.weights}); restoring with the shipped ones")
    return w, h, None


def _check_combination(options: PipelineOptions, model: str, shrinking: bool) -> None:
    if options.refine:
        if model != "irn":
            raise InvalidOption("--refine works with --model irn's downscale only")
        if not shrinking:
            raise InvalidOption("--refine applies to irn's downscale (the server side), not to restoring")
        if options.engine not in ("auto", "torch"):
            raise InvalidOption(f"--refine runs on the torch engine (it needs gradients), not {options.engine}")
    if options.tile and model == "irn":
        raise InvalidOption("--tile works with espcn only: irn resamples whole frames")


def _luma_stages(model: str, src: FrameLayout, dst: FrameLayout, shrinking: bool) -> tuple[LumaStage, ...]:
    if model in CLASSIC_MODELS:
        return ()
    if model == "irn":
        hr, lr = (src, dst) if shrinking else (dst, src)
        kind = "irn_down" if shrinking else "irn_up"
        return (LumaStage(kind, IRN_WEIGHTS, hr=(hr.height, hr.width), lr=(lr.height, lr.width)),)
    factor = max(dst.width / src.width, dst.height / src.height)
    if model == "temporal":
        return tuple(LumaStage("temporal", temporal_weights(s), factor=s) for s in neural_stages(factor))
    return tuple(LumaStage("espcn", f"espcn_y_x{s}", factor=s) for s in neural_stages(factor))


def _temporal_wins(options: PipelineOptions, luma: tuple[LumaStage, ...], shipped: frozenset[str]) -> bool:
    """``auto`` on a file takes the recurrent model where it ships for the one ESPCN stage: on
    held-out camera clips it restores +0.4-0.5 dB (x2) over ESPCN at about twice its CPU time
    (docs/files.md). A live run keeps ESPCN (its deadline has the cheaper paths); so does anything
    the recurrent model does not take (a weights schedule, tiles, refinement, another engine)."""
    return (
        len(luma) == 1 and luma[0].kind == "espcn" and temporal_weights(luma[0].factor) in shipped
        and options.live is None and options.weights is None and not options.tile and not options.refine
        and options.engine in ("auto", "torch", "onnxruntime") and options.precision in ("auto", "fp32")
    )  # fmt: skip


def temporal_weights(factor: int) -> str:
    return f"temporal_y_x{factor}"


def _check_temporal(options: PipelineOptions, luma: tuple[LumaStage, ...], shipped: frozenset[str]) -> None:
    """The recurrent model runs as the one model stage, on the torch engine, from weights that ship."""
    if len(luma) != 1 or luma[0].weights not in shipped:
        have = sorted(n[len("temporal_y_x") :] for n in shipped if n.startswith("temporal_y_x"))
        factors = ", ".join(f"x{f}" for f in have) or "none yet"
        raise InvalidOption(
            f"--model temporal: the recurrent model ships for {factors}; this scale needs "
            f"{' then '.join(f'x{s.factor}' for s in luma) or 'no model'} (use --model espcn)"
        )
    if options.engine not in ("auto", "torch", "onnxruntime"):
        raise InvalidOption("--model temporal runs on the torch or onnxruntime engine (its state carried frame to frame)")
    if options.weights is not None or options.tile:
        raise InvalidOption("--model temporal takes no weights schedule and no --tile")


def live_model_int8(plan: RunPlan, kind: str, device: str) -> bool:
    """Whether a live run's model stage runs in INT8: on a CPU in ONNX Runtime, unless a precision
    was asked for, and with no weights schedule (each set would be quantised as it comes).
    ``ort_session.quantise``: 1.4-1.5x fp32's speed for -0.10 / -0.05 dB on Set5 / Set14 x2, so
    the full model takes more of the frames that the light one would (docs/live.md)."""
    return (
        plan.live is not None and plan.engine.precision == "auto" and kind == "onnxruntime" and device == "cpu"
        and plan.weights is None and not plan.refine
    )  # fmt: skip


def light_weights(factor: int) -> str:
    """The name of the light ESPCN for a sub-pixel factor."""
    return f"espcn_y_x{factor}_f{LIGHT_FEATURES[0]}x{LIGHT_FEATURES[1]}"


def _fallbacks(luma: tuple[LumaStage, ...], shipped: frozenset[str]) -> tuple[str, ...]:
    """A live run's cheaper paths: the light ESPCN where one ships for a one-stage espcn run, then bicubic."""
    if not luma:
        return ()
    light = light_weights(luma[0].factor)
    if len(luma) == 1 and luma[0].kind in ("espcn", "temporal") and light in shipped:
        return (light, "bicubic")
    return ("bicubic",)
