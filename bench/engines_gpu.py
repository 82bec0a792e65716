"""GPU figures of issue #4: ESPCN at x1.5 720p -> 1080p and x2 1080p -> 2160p, model only and end to end.

    python bench/engines_gpu.py [--frames 48] [--chunk 4] [--device cuda] [--small]

Model only: the network on device-resident Y chunks, per engine and precision (torch fp32 eager,
torch fp16 eager, torch fp16 with CUDA graphs, onnxruntime CUDA fp32 where onnxruntime-gpu is
installed, tensorrt fp16/int8 where TensorRT is), synchronised around each timed pass; PSNR of each
against torch fp32. Processing stage: Y and chroma planes from pinned host memory to output planes in
host memory, as the pipeline runs them. End to end: ``vsr_pipe.upscale`` on a synthesised clip of the
input size (H.264), with ``--codec auto`` (NVENC when FFmpeg has it) and the default engine.
Prints the GPU's name; the best of ``--repeats`` passes counts. ``--small`` (and ``--device cpu``)
runs the same code at 1/4 the sizes, to check the script itself on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsr_pipe.engines.base import OrtOptions, TorchOptions, TrtOptions, make_engine  # noqa: E402
from vsr_pipe.errors import EngineUnavailable  # noqa: E402
from vsr_pipe.io.layout import FrameLayout  # noqa: E402
from vsr_pipe.pipeline.process import PlaneRescaler, ProcessPlan  # noqa: E402
from vsr_pipe.pipeline.ring import allocate_chunk  # noqa: E402
from vsr_pipe.weights.store import load_model, shipped_path  # noqa: E402

CASES = (("x1.5 720p->1080p", (720, 1280), (1080, 1920)), ("x2 1080p->2160p", (1080, 1920), (2160, 3840)))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float().clamp(0, 1) - b.float().clamp(0, 1)) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def engines_for(device: str, model: torch.nn.Module) -> dict:
    candidates = {"torch fp32 (eager)": TorchOptions(device=device, cuda_graphs=False)}
    if device.startswith("cuda"):
        candidates["torch fp16 (eager)"] = TorchOptions(device=device, precision="fp16", cuda_graphs=False)
        candidates["torch fp16 + CUDA graphs (auto)"] = TorchOptions(device=device, precision="fp16")
        candidates["onnxruntime CUDA fp32"] = OrtOptions(device="cuda")
        candidates["tensorrt fp16"] = TrtOptions(device=device, precision="fp16")
    else:
        candidates["onnxruntime fp32"] = OrtOptions()
    built = {}
    for name, options in candidates.items():
        try:
            built[name] = make_engine(options, model, "espcn_x2")
        except EngineUnavailable as exc:
            print(f"({name}: skipped, {exc})")
    return built


def model_only(engine, y: torch.Tensor, chunk: int, repeats: int) -> tuple[float, torch.Tensor]:
    y = y.to(engine.device)
    chunks = [y[i : i + chunk] for i in range(0, len(y), chunk)]
    out = torch.cat([engine(c) for c in chunks])  # warm-up: cuDNN autotune, graph capture, TRT build
    best = math.inf
    for _ in range(repeats):
        sync(engine.device)
        t0 = time.perf_counter()
        for c in chunks:
            engine(c)
        sync(engine.device)
        best = min(best, time.perf_counter() - t0)
    return len(y) / best, out


def processing_stage(src: FrameLayout, dst: FrameLayout, engine, frames: int, chunk: int, repeats: int) -> float:
    """Planes in pinned host memory -> output planes in host memory, as the pipeline's processor runs."""
    pinned = engine.device.type == "cuda"
    rescaler = PlaneRescaler(ProcessPlan(src, dst), [engine], device=engine.device, stage_scales=[2])
    chunk_in, chunk_out = allocate_chunk(src, chunk, pinned), allocate_chunk(dst, chunk, pinned)
    rng = np.random.default_rng(0)
    for p in chunk_in.planes:
        p[:] = rng.integers(16, 235, p.shape, dtype=p.dtype)
    rescaler(chunk_in.planes, chunk_out.planes)  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(max(1, frames // chunk)):
            rescaler(chunk_in.planes, chunk_out.planes)
        best = min(best, time.perf_counter() - t0)
    return max(1, frames // chunk) * chunk / best


def end_to_end(
    hw_in: tuple[int, int], hw_out: tuple[int, int], frames: int, device: str, workdir: Path
) -> tuple[float, str]:
    import av

    import vsr_pipe

    h, w = hw_in
    clip = workdir / f"in_{w}x{h}.mp4"
    if not clip.exists():
        with av.open(str(clip), "w") as out:
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
    target = workdir / f"out_{hw_out[1]}x{hw_out[0]}.mp4"
    from vsr_pipe.io.encode import resolve_codec

    codec = resolve_codec("auto")  # NVENC where FFmpeg has it and it opens, else libx264
    encode = vsr_pipe.EncodeOptions(codec=codec)
    summary = vsr_pipe.upscale(
        str(clip), str(target), size=(hw_out[1], hw_out[0]), model="espcn", encode=encode, device=device
    )
    return summary.frames / summary.seconds, f"{summary.engine}, {codec}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--small", action="store_true", help="1/4 the sizes: check the script without a GPU")
    ap.add_argument("--no-e2e", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("VSR_PIPE_CACHE", tempfile.mkdtemp(prefix="vsr-bench-"))
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {gpu}; torch {torch.__version__}; chunk {args.chunk}; best of {args.repeats}")
    model = load_model(shipped_path("espcn_y_x2"))
    engines = engines_for(args.device, model)
    workdir = Path(tempfile.mkdtemp(prefix="vsr-bench-gpu-"))
    div = 4 if args.small else 1
    for label, hw_in, hw_out in CASES:
        (h, w), (oh, ow) = (hw_in[0] // div, hw_in[1] // div), (hw_out[0] // div, hw_out[1] // div)
        # The network runs at x2 either way (x1.5 is ESPCN x2, then an antialiased resample to size).
        y = torch.rand(args.frames, 1, h, w, generator=torch.Generator().manual_seed(0))
        print(f"\n{label}{' (small)' if div > 1 else ''}: {w}x{h} -> {ow}x{oh}, {args.frames} frames")
        print("| engine | model-only fps | PSNR vs torch fp32 |")
        print("|---|---|---|")
        ref = None
        for name, engine in engines.items():
            fps, out = model_only(engine, y, args.chunk, args.repeats)
            ref = out.float().cpu() if ref is None else ref
            quality = "–" if out is ref else f"{psnr(out.cpu(), ref):.1f} dB"
            print(f"| {name} | {fps:.1f} | {quality} |", flush=True)
        fastest = next(reversed(engines.values()))
        src, dst = FrameLayout(w, h, "yuv420p"), FrameLayout(ow, oh, "yuv420p")
        stage = processing_stage(src, dst, fastest, args.frames, args.chunk, args.repeats)
        print(f"processing stage (Y + chroma, host planes in and out, {fastest.name}): {stage:.1f} fps")
        if not args.no_e2e:
            fps, how = end_to_end((h, w), (oh, ow), args.frames, args.device, workdir)
            print(f"end to end (decode + model + encode, {how}): {fps:.1f} fps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
