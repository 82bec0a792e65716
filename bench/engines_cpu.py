"""ESPCN x2 per engine and precision on this CPU, on the same frames, model only.

    python bench/engines_cpu.py [VIDEO] [--frames 12] [--chunk 4] [--repeats 3]

Rows: eager PyTorch fp32, ONNX Runtime fp32, ONNX Runtime INT8 (the middle layer, ranges fixed by tanh), and OpenCV's
dnn_superres ESPCN x2 when opencv-contrib is installed (on BGR frames, as it runs). Prints fps, the
ratio against eager PyTorch, and PSNR of each engine's output against PyTorch fp32's (Y, [0, 1]).
Passes alternate between engines; the best of ``--repeats`` counts (a shared machine is noisy).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

from bench.common import DATA, SAMPLE, bench_parser, decoded_arrays, opencv_model, tensor_psnr, upsample_seconds  # noqa: E402
from vsr_pipe.engines.base import OrtOptions, TorchOptions, make_engine  # noqa: E402
from vsr_pipe.weights.store import load_model, shipped_path  # noqa: E402


def luma_frames(path: Path, n: int) -> tuple[torch.Tensor, list[np.ndarray]]:
    """The first ``n`` frames as (N, 1, H, W) float Y in [0, 1], and as BGR uint8 for OpenCV."""
    ys = np.stack(decoded_arrays(path, n, "gray")).astype(np.float32) / 255
    return torch.from_numpy(ys)[:, None], decoded_arrays(path, n, "bgr24")


def main() -> int:
    ap = bench_parser(__doc__, data=False)
    ap.add_argument("video", nargs="?", default=str(SAMPLE))
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("VSR_PIPE_CACHE", tempfile.mkdtemp(prefix="vsr-bench-"))
    y, bgr = luma_frames(Path(args.video), args.frames)
    model = load_model(shipped_path("espcn_y_x2"))
    engines = {
        "torch fp32 (eager)": make_engine(TorchOptions(), model, "espcn_x2"),
        "onnxruntime fp32": make_engine(OrtOptions(), model, "espcn_x2"),
        "onnxruntime int8 (static, middle layer)": make_engine(OrtOptions(precision="int8"), model, "espcn_x2"),
    }
    chunks = [y[i : i + args.chunk] for i in range(0, len(y), args.chunk)]
    outputs = {name: torch.cat([e(c) for c in chunks]) for name, e in engines.items()}  # warm-up + outputs

    def timer(engine):
        t0 = time.perf_counter()
        for c in chunks:
            engine(c)
        return time.perf_counter() - t0

    runners = {name: (lambda e=e: timer(e)) for name, e in engines.items()}
    try:
        import cv2

        sr = opencv_model(cv2, DATA / "opencv_models" / "ESPCN_x2.pb", "espcn", 2)
        sr.upsample(bgr[0])
        runners["OpenCV dnn_superres ESPCN"] = lambda: upsample_seconds(sr, bgr)
    except Exception as e:  # noqa: BLE001 (optional comparison)
        print(f"(OpenCV row skipped: {type(e).__name__}: {e})")
    best = {name: math.inf for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            best[name] = min(best[name], run())
    base = best["torch fp32 (eager)"]
    ref = outputs["torch fp32 (eager)"]
    h, w = y.shape[-2:]
    print(f"ESPCN x2, {len(y)} frames {w}x{h} -> {2 * w}x{2 * h}, chunk {args.chunk}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} cores; best of {args.repeats}")  # fmt: skip
    print("| engine | fps | vs eager torch | PSNR vs torch fp32 |")
    print("|---|---|---|---|")
    for name, seconds in best.items():
        fps = len(y) / seconds
        quality = (
            f"{tensor_psnr(outputs[name], ref):.1f} dB" if name in outputs and name != "torch fp32 (eager)" else "–"
        )
        print(f"| {name} | {fps:.2f} | {base / seconds:.2f}x | {quality} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
