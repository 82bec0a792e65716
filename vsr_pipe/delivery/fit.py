"""Per-chunk fine-tuning: a correction network trained on one chunk's (decoded LR, master) frames.

:func:`fit_chunk` is a pure function of its :class:`ChunkTask` (frames, settings, seed): it reads
no file and writes none, so local worker processes and Ray run it unchanged
(``vsr_pipe.runners.Runner.map(fit_chunk, tasks)``). The generic restorer stays frozen; only the
correction is trained, so only its weights travel with the video.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

# The only tensors a chunk file holds: the correction's (the base is the client's generic model).
PREFIX = "correction."
CODES_PREFIX = "mod."  # a modulation fit's result: its int8 codes (delivery/compact.py)
WARMUP = 0.05  # share of the budget over which the learning rate ramps up


@dataclass(frozen=True)
class BaseModel:
    """The generic restorer: ``kind`` "espcn" (shipped ``weights``, integer ``factor``) or "irn_up"
    (the rescaler's inverse from ``lr`` to ``hr``, (height, width) each, z = 0)."""

    kind: str
    weights: str
    factor: int
    hr: tuple[int, int] = (0, 0)
    lr: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class FitSettings:
    """How a chunk is fitted. The budget is ``steps`` Adam steps, or ``seconds`` of wall time when
    ``seconds`` > 0 (then the result depends on the machine's speed, not only on the inputs)."""

    steps: int = 300
    seconds: float = 0.0
    features: int = 32
    blocks: int = 4
    batch: int = 16
    patch: int = 48  # LR pixels per patch side
    learning_rate: float = 2e-3  # the sample, 15 min: +1.59 dB in 2,525 steps; 1e-3 gave +1.46 in 3,173
    threads: int = 0  # torch threads in the worker; 0 keeps its default
    seed: int = 0
    device: str = "auto"  # "auto": the worker's GPU where it has one (a Ray task that asked for one), else the CPU
    # Patches drawn in proportion to the generic model's error in them (STDO's patch difficulty), mixed
    # with this share drawn uniformly; 1.0 is plain uniform sampling. Flat areas the generic model
    # already gets right then cost few steps (the sample, 15 min: +1.59 dB against +1.39 uniform).
    uniform_share: float = 0.25
    # "correction": a whole correction from a zero tail, shipped fp16 (76.6 k numbers for 32x4).
    # "modulation": per-channel codes on the trained correction ``start`` (a shipped weights name,
    # e.g. the codec-aware espcn_y_x2_codec), int8, 584 numbers for 32x4 (models/modulation.py).
    train: str = "correction"
    start: str = ""
    # Adam's step for modulation codes, in code units, and their patches' uniform share: 300 steps of
    # 0.5 on error-weighted patches left `person` x2 CRF 43's title 0.15 dB short of 2.0 on uniform ones
    # (+30 B of codes; docs/delivery.md). Codes modulate every pixel alike, so the flat areas count too.
    code_rate: float = 2.0
    code_uniform_share: float = 1.0
    code_grid: int = 1  # modulation codes are multiples of this (models/modulation.py): fewer bytes, coarser


@dataclass(frozen=True)
class ChunkTask:
    """One chunk's inputs: ``lr`` (n, h, w) Y planes as the client decodes them, ``hr``
    (n, r·h, r·w) Y planes of the master (uint8, or uint16 10-bit codes), the base model and the
    settings."""

    index: int
    lr: np.ndarray
    hr: np.ndarray
    base: BaseModel
    settings: FitSettings = field(default_factory=FitSettings)
    # Modulation only: the codes the fit starts from (the title's, for a chunk), int8 by name.
    start_codes: dict | None = None


@dataclass(frozen=True)
class ChunkResult:
    """What fitting one chunk gave: the correction's tensors (float16 arrays by state-dict name,
    prefixed ``correction.``), the loss curve, Y-PSNR per frame (dB, 8-bit, whole frame) of the
    generic and the corrected restorer, and where the time went."""

    index: int
    tensors: dict
    losses: tuple[float, ...]
    generic_psnr: tuple[float, ...]
    tuned_psnr: tuple[float, ...]
    steps: int
    seconds: float
    # Modulation only: Y-PSNR per frame with the codes the fit started from (what the client has
    # without this chunk's file), to decide whether the file pays for its bytes.
    start_psnr: tuple[float, ...] = ()


def build_base(base: BaseModel):
    """The frozen generic restorer as a module LR (N, 1, h, w) -> HR (N, 1, r·h, r·w)."""
    from ..models.rescaler import BoundUp, RescaleGeometry
    from ..weights.store import load_model, shipped_path

    net = load_model(shipped_path(base.weights))
    if base.kind == "irn_up":
        net = BoundUp(net, RescaleGeometry(base.hr, base.lr), temperature=0.0)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def fit_chunk(task: ChunkTask, watch: Callable | None = None) -> ChunkResult:
    """Fit a correction network to one chunk (see the module's docstring). ``watch(step, seconds,
    loss, net)``, when given, is called after every step (a long run's checkpoints and evaluations);
    a true return ends the fit there."""
    import torch

    from ..models.correction import CorrectionNet

    s = task.settings
    started = time.perf_counter()
    if s.threads:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed * 1_000_003 + task.index)
    rng = np.random.default_rng([s.seed, task.index])
    peak = 1023.0 if task.lr.dtype == np.uint16 else 255.0  # 10-bit planes come as uint16 codes
    device = torch.device(
        "cuda" if s.device == "auto" and torch.cuda.is_available() else s.device.replace("auto", "cpu")
    )
    # The planes stay integer codes (a quarter of float32's memory: a 1080p frame pair is 2.6 MB, not
    # 10.4) and become floats a batch at a time; only the generic output is held as float32.
    x, hr = _codes(task.lr, device), _codes(task.hr, device)
    y = _base_outputs(build_base(task.base).to(device), x, peak)
    if s.train == "modulation":
        return _fit_modulation(task, x, y, hr, peak, rng, watch, started, device)
    net = CorrectionNet(task.base.factor, s.features, s.blocks).to(device)
    losses = _train(net, x, y, hr, peak, s, rng, watch)
    net.eval().half().float()  # measured as shipped: fp16 weights
    with torch.no_grad():
        tuned = [yi + net(xi.float() / peak, yi) for xi, yi in zip(x.split(4), y.split(4))]
    generic_psnr = _psnr_per_frame(y.split(4), hr.split(4), peak)
    tuned_psnr = _psnr_per_frame(tuned, hr.split(4), peak)
    if _mean(tuned_psnr) < _mean(generic_psnr):  # never ship a chunk worse than the generic model
        with torch.no_grad():
            net.tail.weight.zero_()
            net.tail.bias.zero_()
        tuned_psnr = generic_psnr
    tensors = {PREFIX + k: v.detach().half().cpu().numpy() for k, v in net.state_dict().items()}
    return ChunkResult(
        task.index, tensors, tuple(losses), generic_psnr, tuned_psnr, len(losses), time.perf_counter() - started
    )


def start_correction(name: str):
    """The trained correction inside the shipped ``name`` (a ``corrected`` weights file)."""
    from ..weights.store import load_model, shipped_path

    model = load_model(shipped_path(name))
    if not hasattr(model, "correction"):
        raise ValueError(f"{name} holds no correction to modulate")
    return model.correction


def _fit_modulation(task: ChunkTask, x, y, hr, peak: float, rng, watch, started: float, device) -> ChunkResult:
    """Per-channel codes on the trained correction ``settings.start``, quantised in the loop. The
    result is the best of: the codes the client has without this fit (``start_codes``, or none), the
    fitted codes, and — for a title, whose start may be worse than the base alone — the correction
    switched off (the plain generic model): a package is never worse than the generic model."""
    import torch

    from ..models.modulation import ModulatedCorrection, off_codes

    s = task.settings
    correction = start_correction(s.start)
    zero = {k: torch.zeros_like(v) for k, v in off_codes(correction).items()}
    given = {k: torch.as_tensor(np.asarray(v)) for k, v in task.start_codes.items()} if task.start_codes else zero
    net = ModulatedCorrection(correction, given, s.code_grid).to(device)
    generic_psnr = _psnr_per_frame(y.split(4), hr.split(4), peak)
    with torch.no_grad():
        before = _psnr_per_frame(_corrected(net, x, y, peak), hr.split(4), peak)
    candidates = [(given, before)]
    if task.start_codes is None and _mean(generic_psnr) > _mean(before):
        net = ModulatedCorrection(correction, off_codes(correction), s.code_grid).to(device)  # fit from the base alone
        candidates.append((off_codes(correction), generic_psnr))
    losses = _train(net, x, y, hr, peak, replace(s, learning_rate=s.code_rate, uniform_share=s.code_uniform_share), rng, watch)
    with torch.no_grad():
        candidates.append((net.codes(), _psnr_per_frame(_corrected(net, x, y, peak), hr.split(4), peak)))
    codes, tuned_psnr = max(reversed(candidates), key=lambda c: _mean(c[1]))  # ties: the later (fitted) one
    if codes is not given and _mean(tuned_psnr) <= _mean(before):
        codes, tuned_psnr = given, before
    tensors = {CODES_PREFIX + k: v.cpu().numpy().astype(np.int8) for k, v in codes.items()}
    return ChunkResult(
        task.index, tensors, tuple(losses), generic_psnr, tuple(tuned_psnr), len(losses),
        time.perf_counter() - started, tuple(before),
    )  # fmt: skip


def _corrected(net, x, y, peak: float) -> list:
    return [yi + net(xi.float() / peak, yi) for xi, yi in zip(x.split(4), y.split(4))]


def _mean(values: tuple[float, ...]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("inf")


def _codes(planes: np.ndarray, device):
    """(n, h, w) uint8 or uint16 codes as an (n, 1, h, w) integer tensor (int16 holds 10-bit codes)."""
    import torch

    planes = np.ascontiguousarray(planes)
    if planes.dtype != np.uint8:
        planes = planes.astype(np.int16)
    return torch.from_numpy(planes).unsqueeze(1).to(device)


def _base_outputs(base, x, peak: float):
    import torch

    with torch.no_grad():
        return torch.cat([base(part.float() / peak) for part in x.split(4)])


def patch_sampler(y, hr, r: int, p: int, uniform_share: float, rng: np.random.Generator, peak: float = 1.0) -> Callable:
    """A function of ``count`` -> (frames, tops, lefts) of p×p LR patches: drawn in proportion to
    the squared error of ``y`` (the generic output) against ``hr`` (codes of ``peak``) inside each patch, or uniformly
    with probability ``uniform_share``. Errors are summed on a grid of p/8 (a few MB for a 1080p
    chunk), and a drawn cell's patch is jittered within the cell."""
    import torch

    n, h, w = y.shape[0], y.shape[2] // r, y.shape[3] // r
    rows, cols, step = h - p + 1, w - p + 1, max(1, p // 8)
    with torch.no_grad():
        err = torch.cat(
            [torch.nn.functional.avg_pool2d((a - b.float() / peak) ** 2, r) for a, b in zip(y.split(8), hr.split(8))]
        )
        err = torch.nn.functional.avg_pool2d(err[:, :, : rows + p - 1, : cols + p - 1], p, stride=step)[:, 0]
    grid_rows, grid_cols = err.shape[1], err.shape[2]
    cdf = np.cumsum(err.double().cpu().numpy().reshape(-1))
    hard = cdf[-1] > 0 and uniform_share < 1

    def draw(count: int):
        frames, tops, lefts = rng.integers(0, n, count), rng.integers(0, rows, count), rng.integers(0, cols, count)
        if hard:
            pick = rng.random(count) >= uniform_share
            cell = np.minimum(np.searchsorted(cdf, rng.random(int(pick.sum())) * cdf[-1], side="right"), cdf.size - 1)
            f, rest = np.divmod(cell, grid_rows * grid_cols)
            gr, gc = np.divmod(rest, grid_cols)
            frames[pick] = f
            tops[pick] = np.minimum(gr * step + rng.integers(0, step, f.size), rows - 1)
            lefts[pick] = np.minimum(gc * step + rng.integers(0, step, f.size), cols - 1)
        return frames, tops, lefts

    return draw


def _train(net, x, y, hr, peak: float, s: FitSettings, rng: np.random.Generator, watch: Callable | None) -> list[float]:
    """Adam on MSE over sampled patches, cosine-decayed over the budget (steps, or seconds)."""
    import torch

    r = net.scale
    n, _, h, w = x.shape
    p = max(8, min(s.patch, h, w))
    draw = patch_sampler(y, hr, r, p, s.uniform_share, rng, peak)
    opt = torch.optim.Adam(net.parameters(), lr=s.learning_rate)
    losses: list[float] = []
    clock = time.perf_counter()
    while True:
        done = (time.perf_counter() - clock) / s.seconds if s.seconds > 0 else len(losses) / max(1, s.steps)
        if done >= 1:
            return losses
        # A short linear warm-up: Adam's first steps move every weight by about the learning rate,
        # which from a zero tail would knock the generic output off before anything is learnt.
        warm = min(1.0, (done + 1e-9) / WARMUP)
        for group in opt.param_groups:
            group["lr"] = s.learning_rate * warm * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * done)))
        frames, tops, lefts = draw(s.batch)
        xb = torch.stack([x[f, :, t : t + p, q : q + p] for f, t, q in zip(frames, tops, lefts)]).float() / peak
        yb = torch.stack([y[f, :, r * t : r * (t + p), r * q : r * (q + p)] for f, t, q in zip(frames, tops, lefts)])
        hb = torch.stack([hr[f, :, r * t : r * (t + p), r * q : r * (q + p)] for f, t, q in zip(frames, tops, lefts)])
        hb = hb.float() / peak
        loss = torch.mean((yb + net(xb, yb) - hb) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if watch is not None and watch(len(losses), time.perf_counter() - clock, losses[-1], net):
            return losses


def _psnr_per_frame(outs, hrs, peak: float) -> tuple[float, ...]:
    """Y-PSNR per frame of each ``outs`` part (float, [0, 1]) rounded to 8-bit codes, as the
    client's output would be, against the matching ``hrs`` part (codes of ``peak``)."""
    import torch

    scores = []
    for out, hr in zip(outs, hrs):
        q = torch.round(out.clamp(0, 1) * 255)
        mse = ((q - torch.round(hr.float() / peak * 255)) ** 2).mean(dim=(1, 2, 3))
        scores += [float("inf") if m == 0 else float(10 * math.log10(255**2 / float(m))) for m in mse]
    return tuple(scores)
