"""GPU figures: ESPCN at x2 1080p -> 2160p and x1.5 720p -> 1080p, model only, processing stage, end to end.

    python bench/engines_gpu.py [--frames 48] [--chunk 4] [--device cuda] [--json out.json] [--small]

Rows, per case: torch fp32 eager, torch fp16 eager, torch fp16 + CUDA graphs, compiled
(``torch.compile`` through the engine kind "compile", skipped with its reason until that kind
exists), and onnxruntime / TensorRT where installed (skipped with the reason where not: the GPU
machine has no TensorRT). Each row gives:
  model only        the network on device-resident Y chunks, synchronised around each timed pass;
  stage             Y and chroma planes from pinned host memory to output planes in host memory,
                    as the pipeline's processor runs them (``pipeline_stage``);
  PSNR              against torch fp32; first call: build + warm-up seconds (graph capture, compile).
End to end: ``vsr_pipe.upscale`` on a synthesised H.264 clip of the input size with ``--codec auto``
(NVENC where this PyAV's FFmpeg opens it on this driver, else libx264; the reason NVENC did not open
is printed), then libx264 for comparison, beside the stages' own rates: decode only, processing
stage, encode only. Prints the GPU's name, ratios to fp32 eager, the fastest row and the goals
(>= 500 fps model only fp16 at x2 1080p, >= 60 fps end to end). ``--json`` rewrites its file after
every row, so a run stopped by a timeout keeps what it measured. ``--small`` (with ``--device cpu``)
runs the same code at 1/4 the sizes: the CPU smoke check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsr_pipe.engines.base import OrtOptions, TorchOptions, TrtOptions, make_engine, resolve_engine  # noqa: E402
from vsr_pipe.weights.store import load_model, shipped_path  # noqa: E402

# (label, input (h, w), output (h, w)); the network runs at x2 either way (x1.5 is ESPCN x2, then
# an antialiased resample to size).
CASES = (("x2 1080p->2160p", (1080, 1920), (2160, 3840)), ("x1.5 720p->1080p", (720, 1280), (1080, 1920)))
GOAL_MODEL_FPS, GOAL_E2E_FPS = 500.0, 60.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float().clamp(0, 1) - b.float().clamp(0, 1)) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def engine_options(device: str) -> dict[str, object]:
    """Row name -> engine options, or -> the reason the row cannot run here."""
    cuda = device.startswith("cuda")
    rows: dict[str, object] = {"torch fp32 eager": TorchOptions(device=device, cuda_graphs=False)}
    if cuda:
        rows["torch fp16 eager"] = TorchOptions(device=device, precision="fp16", cuda_graphs=False)
        rows["torch fp16 + CUDA graphs"] = TorchOptions(device=device, precision="fp16")
    precision = "fp16" if cuda else "fp32"
    try:  # the "compile" kind (torch.compile, Triton on a GPU) may not exist yet in this checkout
        rows[f"compiled {precision} (torch.compile)"] = resolve_engine("compile", device, precision, 0)
    except Exception as exc:  # noqa: BLE001 (any refusal means: no such row here, say why)
        rows[f"compiled {precision} (torch.compile)"] = f"engine kind 'compile' unavailable: {exc}"
    rows["onnxruntime CUDA fp32" if cuda else "onnxruntime fp32"] = OrtOptions(device="cuda" if cuda else "cpu")
    if cuda:
        rows["tensorrt fp16"] = TrtOptions(device=device, precision="fp16")
    return rows


def build(options: object, model: torch.nn.Module) -> tuple[object | None, str]:
    """(engine, "") or (None, why not)."""
    if isinstance(options, str):
        return None, options
    if isinstance(options, TrtOptions):
        from vsr_pipe.engines.tensorrt_engine import available

        if not available():
            return None, "TensorRT is not installed on this machine (too large to carry)"
    try:
        return make_engine(options, model, "espcn_x2"), ""
    except Exception as exc:  # noqa: BLE001 (EngineUnavailable, missing providers, compile errors)
        return None, f"{type(exc).__name__}: {exc}"


def model_only(engine, y: torch.Tensor, chunk: int, repeats: int) -> tuple[float, float, torch.Tensor]:
    """(fps, first-call seconds, output) of the network alone on device-resident (N, 1, h, w) Y."""
    y = y.to(engine.device)
    chunks = [y[i : i + chunk] for i in range(0, len(y), chunk)]
    sync(engine.device)
    t0 = time.perf_counter()
    out = torch.cat([engine(c).float() for c in chunks]).cpu()  # warm-up: autotune, capture, compile
    first = time.perf_counter() - t0
    best = math.inf
    for _ in range(repeats):
        sync(engine.device)
        t0 = time.perf_counter()
        for c in chunks:
            engine(c)
        sync(engine.device)
        best = min(best, time.perf_counter() - t0)
    return len(y) / best, first, out


def pipeline_stage(src_hw, dst_hw, engine, frames: int, chunk: int, repeats: int) -> float:
    """fps of the processor: yuv420p planes in (pinned on CUDA) host memory -> output planes.

    The one place this bench touches pipeline internals (``PlaneRescaler``, ``ProcessPlan``,
    ``allocate_chunk``, ``FrameLayout``): adapt here when the pipeline changes.
    """
    from vsr_pipe.io.layout import FrameLayout
    from vsr_pipe.pipeline.process import PlaneRescaler, ProcessPlan
    from vsr_pipe.pipeline.ring import allocate_chunk

    src, dst = FrameLayout(src_hw[1], src_hw[0], "yuv420p"), FrameLayout(dst_hw[1], dst_hw[0], "yuv420p")
    pinned = engine.device.type == "cuda"
    rescaler = PlaneRescaler(ProcessPlan(src, dst), [engine], device=engine.device, stage_scales=[2])
    chunk_in, chunk_out = allocate_chunk(src, chunk, pinned), allocate_chunk(dst, chunk, pinned)
    rng = np.random.default_rng(0)
    for p in chunk_in.planes:
        p[:] = rng.integers(16, 235, p.shape, dtype=p.dtype)
    rescaler(chunk_in.planes, chunk_out.planes)  # warm-up
    calls = max(1, frames // chunk)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            rescaler(chunk_in.planes, chunk_out.planes)
        best = min(best, time.perf_counter() - t0)
    return calls * chunk / best


def pick_codec() -> tuple[str, str]:
    """("h264_nvenc", "") where NVENC opens here, else ("libx264", why NVENC did not open)."""
    import av

    try:
        ctx = av.CodecContext.create("h264_nvenc", "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 256, 256, "yuv420p", Fraction(1, 25)
        ctx.open()
        return "h264_nvenc", ""
    except Exception as exc:  # noqa: BLE001 (not compiled in, no libnvidia-encode, no device)
        return "libx264", f"{type(exc).__name__}: {exc}"


def synth_clip(path: Path, hw: tuple[int, int], frames: int) -> Path:
    import av

    h, w = hw
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "18", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(frames):
            y = ((np.sin(xx / 17.0 + i / 3) * np.cos(yy / 23.0 - i / 5) + 1) * 100 + 16).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.stack([y, y, y], -1), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decode_fps(clip: Path) -> float:
    import av

    t0, n = time.perf_counter(), 0
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="yuv420p")
            n += 1
    return n / (time.perf_counter() - t0)


def encode_fps(codec: str, hw: tuple[int, int], frames: int, workdir: Path) -> float:
    """Encode-only rate of ``codec`` at size ``hw`` (yuv420p frames made beforehand, muxed to MP4)."""
    import av

    h, w = hw
    rng = np.random.default_rng(0)
    base = rng.integers(16, 235, (h * 3 // 2, w), dtype=np.uint8)
    made = [av.VideoFrame.from_ndarray(np.roll(base, 8 * i, axis=1), format="yuv420p") for i in range(frames)]
    t0 = time.perf_counter()
    with av.open(str(workdir / f"enc_{codec}_{w}x{h}.mp4"), "w") as out:
        stream = out.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i, frame in enumerate(made):
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return frames / (time.perf_counter() - t0)


def end_to_end(clip: Path, hw_out: tuple[int, int], codec: str, device: str, workdir: Path) -> tuple[float, str]:
    import vsr_pipe

    target = workdir / f"out_{codec}_{hw_out[1]}x{hw_out[0]}.mp4"
    summary = vsr_pipe.upscale(
        str(clip), str(target), size=(hw_out[1], hw_out[0]), model="espcn",
        encode=vsr_pipe.EncodeOptions(codec=codec), device=device,
    )  # fmt: skip
    return summary.frames / summary.seconds, str(summary.engine)


class Report:
    """Prints rows and keeps them; rewrites ``path`` (JSON) after each, so a timeout loses nothing."""

    def __init__(self, path: str | None, header: dict):
        self.path, self.data = path, {**header, "rows": [], "e2e": [], "skipped": {}, "goals": {}}
        self.reference: dict[str, tuple[torch.Tensor, float]] = {}  # case -> fp32 eager (output, fps)

    def save(self) -> None:
        if self.path:
            Path(self.path).write_text(json.dumps(self.data, indent=1))

    def add(self, key: str, record: dict) -> None:
        self.data[key].append(record)
        self.save()


def run_case(report: Report, label: str, hw_in, hw_out, engines: dict, args, e2e: bool = True) -> None:
    div = 4 if args.small else 1
    (h, w), (oh, ow) = (hw_in[0] // div, hw_in[1] // div), (hw_out[0] // div, hw_out[1] // div)
    y = torch.rand(args.frames, 1, h, w, generator=torch.Generator().manual_seed(0))
    print(f"\n{label}{' (small)' if div > 1 else ''}: {w}x{h} -> {ow}x{oh}, {args.frames} frames, chunk {args.chunk}")
    print("| engine | model only fps | × fp32 eager | stage fps (pinned planes) | PSNR vs fp32 | first call s |")
    print("|---|---|---|---|---|---|")
    for name, engine in engines.items():
        try:
            fps, first, out = model_only(engine, y, args.chunk, args.repeats)
            stage = pipeline_stage((h, w), (oh, ow), engine, args.frames, args.chunk, args.repeats)
        except Exception as exc:  # noqa: BLE001 (one broken engine must not hide the others)
            print(f"| {name} | failed: {type(exc).__name__}: {exc} | | | | |", flush=True)
            report.add("rows", {"case": label, "engine": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        ref, base = report.reference.setdefault(label, (out, fps))
        quality = "–" if out is ref else f"{psnr(out, ref):.1f} dB"
        print(f"| {name} | {fps:.1f} | {fps / base:.2f} | {stage:.1f} | {quality} | {first:.1f} |", flush=True)
        report.add("rows", {"case": label, "engine": name, "model_fps": round(fps, 2), "stage_fps": round(stage, 2),
                            "x_fp32_eager": round(fps / base, 3),
                            "psnr_vs_fp32": None if out is ref else round(psnr(out, ref), 2),
                            "first_call_s": round(first, 2), "size_in": [w, h], "size_out": [ow, oh]})  # fmt: skip
    if args.no_e2e or not e2e:
        return
    workdir = Path(tempfile.mkdtemp(prefix="vsr-bench-gpu-"))
    clip = synth_clip(workdir / f"in_{w}x{h}.mp4", (h, w), args.frames)
    codec, why = pick_codec()
    if why:
        print(f"NVENC does not open here ({why}): end to end uses libx264")
    dec = decode_fps(clip)
    for c in dict.fromkeys([codec, "libx264"]):
        try:
            enc = encode_fps(c, (oh, ow), args.frames, workdir)
            fps, engine_name = end_to_end(clip, (oh, ow), c, args.device, workdir)
        except Exception as exc:  # noqa: BLE001
            print(f"end to end with {c}: failed: {type(exc).__name__}: {exc}", flush=True)
            report.add("e2e", {"case": label, "codec": c, "error": f"{type(exc).__name__}: {exc}"})
            continue
        print(f"end to end ({engine_name}, {c}): {fps:.1f} fps; stages alone: decode {dec:.1f}, encode {enc:.1f} fps "
              f"(the processing stage: table above)", flush=True)  # fmt: skip
        report.add("e2e", {"case": label, "codec": c, "engine": engine_name, "fps": round(fps, 2),
                           "decode_fps": round(dec, 2), "encode_fps": round(enc, 2), "nvenc_refusal": why or None})  # fmt: skip


def goals(report: Report) -> None:
    rows = [r for r in report.data["rows"] if "model_fps" in r]
    x2 = [r for r in rows if r["case"] == CASES[0][0] and "fp16" in r["engine"]]
    best16 = max(x2, key=lambda r: r["model_fps"], default=None)
    for label, *_ in CASES:
        fastest = max((r for r in rows if r["case"] == label), key=lambda r: r["stage_fps"], default=None)
        if fastest:
            print(f"fastest processing stage at {label}: {fastest['engine']} ({fastest['stage_fps']} fps)")
            report.data["goals"][f"fastest_stage {label}"] = fastest["engine"]
    if best16:
        met = best16["model_fps"] >= GOAL_MODEL_FPS
        print(f"goal: model only fp16 x2 1080p >= {GOAL_MODEL_FPS:.0f} fps: {best16['model_fps']} ({best16['engine']})"
              f" -> {'met' if met else 'not met'}")  # fmt: skip
        report.data["goals"]["model_fp16_x2_1080p"] = {
            "fps": best16["model_fps"],
            "engine": best16["engine"],
            "met": met,
        }
    for label, *_ in CASES:
        best = max(
            (r for r in report.data["e2e"] if "fps" in r and r["case"] == label), key=lambda r: r["fps"], default=None
        )
        if best:
            met = best["fps"] >= GOAL_E2E_FPS
            print(f"goal: end to end >= {GOAL_E2E_FPS:.0f} fps at {label}: {best['fps']} ({best['codec']}) -> "
                  f"{'met' if met else 'not met'}")  # fmt: skip
            report.data["goals"][f"e2e {label}"] = {"fps": best["fps"], "codec": best["codec"], "met": met}
    report.save()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--small", action="store_true", help="1/4 the sizes: check the script without a GPU")
    ap.add_argument("--no-e2e", action="store_true")
    ap.add_argument("--cases", default="all", help="'all', or a comma list of case indices (0: x2, 1: x1.5)")
    ap.add_argument("--json", help="write the figures here (rewritten after every row)")
    args = ap.parse_args()
    os.environ.setdefault("VSR_PIPE_CACHE", tempfile.mkdtemp(prefix="vsr-bench-"))
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {gpu}; torch {torch.__version__}; chunk {args.chunk}; best of {args.repeats}")
    report = Report(args.json, {"device": gpu, "torch": torch.__version__, "chunk": args.chunk,
                                "frames": args.frames, "small": args.small, "date": time.strftime("%Y-%m-%d")})  # fmt: skip
    model = load_model(shipped_path("espcn_y_x2"))
    engines = {}
    for name, options in engine_options(args.device).items():
        engine, why = build(options, model)
        if engine is None:
            print(f"({name}: skipped, {why})")
            report.data["skipped"][name] = why
        else:
            engines[name] = engine
    if args.device == "cpu":
        print("(CUDA rows skipped: no CUDA on this run's device)")
    report.save()
    picked = CASES if args.cases == "all" else [CASES[int(i)] for i in args.cases.split(",")]
    # Compiled rows last: a slow compile must not cost the other rows or the end-to-end figures.
    compiled = {k: v for k, v in engines.items() if k.startswith("compiled")}
    others = {k: v for k, v in engines.items() if k not in compiled}
    for label, hw_in, hw_out in picked:
        run_case(report, label, hw_in, hw_out, others, args)
    for label, hw_in, hw_out in picked if compiled else ():
        run_case(report, label, hw_in, hw_out, compiled, args, e2e=False)
    print()
    goals(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
