"""Our shipped ESPCN (Y model) against OpenCV's dnn_superres models, the field's way.

    python bench/compare_opencv.py [--data ../shared/data] [--sets Set5,Set14] [--scales 2,3,4]
                                   [--no-ssim] [--frames 20] [--video PATH] [--json PATH]

Quality: every method runs through ``vsr_pipe.quality.images.evaluate_folder`` (HR modcropped,
LR = MATLAB bicubic rounded to 8 bits, Y-PSNR/SSIM with ``scale`` pixels shaved, mean over
images), so the OpenCV rows should match the reference figures in ``../shared/data/README.md``.
OpenCV models get the same 8-bit LR as BGR uint8 and their output goes back to RGB float.

Speed: ESPCN x2 on the first ``--frames`` frames of a 640x360 clip. OpenCV: ``upsample`` on BGR
uint8 frames (decoded with PyAV to RGB24). Ours: the pipeline's whole processing stage
(an opened run's rescaler on stacked YUV planes, as ``bench/pipeline_overhead.py`` times it).
Both after a warm-up. Needs opencv-contrib-python(-headless) and the data folder; without
them the script prints one line and exits with code 2.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

from bench.common import (  # noqa: E402
    DATA,
    SAMPLE,
    bench_parser,
    decoded_arrays,
    decoded_planes,
    opencv_model,
    time_process,
    upsample_seconds,
)

# (row label, .pb file prefix, setModel name, scales the model exists for)
OPENCV_MODELS = [
    ("OpenCV ESPCN", "ESPCN", "espcn", (2, 3, 4)),
    ("OpenCV FSRCNN", "FSRCNN", "fsrcnn", (2, 3, 4)),
    ("OpenCV FSRCNN-small", "FSRCNN-small", "fsrcnn", (2, 3, 4)),
    ("OpenCV LapSRN", "LapSRN", "lapsrn", (2, 4, 8)),
]
OURS = "vsr-pipe ESPCN"
BICUBIC = "bicubic"
# As pyproject's compare extra: OpenCV 5.1 takes dnn_superres's TensorFlow .pb models for ONNX
# and fails on every one (model_proto.has_graph()); 5.0 and 4.x read them.
OPENCV_PIN = "opencv-contrib-python-headless>=4.8,<5.1"
OPENCV_BELOW = (5, 1)


def fail(message: str) -> None:
    print(f"compare_opencv: {message}", file=sys.stderr)
    sys.exit(2)


def opencv_version_problem(version: str) -> str | None:
    """Why OpenCV ``version`` (``cv2.__version__``, e.g. "5.1.0") cannot run this comparison, or None."""
    found = re.match(r"(\d+)\.(\d+)", version)
    if found and tuple(int(n) for n in found.groups()) < OPENCV_BELOW:
        return None
    return f"OpenCV {version} cannot read OpenCV's own .pb super-resolution models: pip install '{OPENCV_PIN}'"


# --- quality ---------------------------------------------------------------------------------


def opencv_upscaler(cv2, model_path: Path, algo: str, scale: int):
    """An ``evaluate_folder`` upscaler around a dnn_superres model: RGB float in, RGB float out."""
    sr = opencv_model(cv2, model_path, algo, scale)

    def run(lr_rgb: np.ndarray, s: int) -> np.ndarray:
        assert s == scale, f"{model_path.name} is a x{scale} model, asked for x{s}"
        bgr = np.ascontiguousarray(np.clip(np.round(lr_rgb), 0, 255).astype(np.uint8)[..., ::-1])
        out = sr.upsample(bgr)
        return out[..., ::-1].astype(np.float64)

    return run


def our_upscaler(scale: int):
    from vsr_pipe.quality.images import model_upscaler
    from vsr_pipe.weights.store import load_model, shipped_path

    return model_upscaler(load_model(shipped_path(f"espcn_y_x{scale}")))


def method_rows(cv2, models_dir: Path):
    """[(label, factory(scale) -> upscaler, scales it has)] in table order."""
    from vsr_pipe.quality.images import bicubic_upscaler

    rows = [(BICUBIC, lambda s: bicubic_upscaler, None)]
    for label, prefix, algo, scales in OPENCV_MODELS:
        rows.append(
            (label, lambda s, p=prefix, a=algo: opencv_upscaler(cv2, models_dir / f"{p}_x{s}.pb", a, s), scales)
        )
    rows.append((OURS, our_upscaler, None))
    return rows


def evaluate_all(cv2, data: Path, sets: list[str], scales: list[int], with_ssim: bool, log) -> dict:
    """{(label, set, scale): SetScore or None where the method has no model for that scale}."""
    from vsr_pipe.quality.images import evaluate_folder

    results = {}
    for label, factory, has in method_rows(cv2, data / "opencv_models"):
        for scale in scales:
            upscaler = factory(scale) if has is None or scale in has else None
            for name in sets:
                if upscaler is None:
                    results[(label, name, scale)] = None
                    continue
                t = time.perf_counter()
                score = evaluate_folder(data / name, scale, upscaler, with_ssim=with_ssim)
                results[(label, name, scale)] = score
                log(f"  {label:20s} {name:6s} x{scale}: {score.psnr:6.2f} dB  ({time.perf_counter() - t:5.1f} s)")
    return results


def cell(score, with_ssim: bool) -> str:
    if score is None:
        return "–"
    if with_ssim and not math.isnan(score.ssim):
        return f"{score.psnr:.2f} / {score.ssim:.4f}"
    return f"{score.psnr:.2f}"


def markdown_table(results: dict, labels: list[str], sets: list[str], scales: list[int], with_ssim: bool) -> str:
    cols = [(name, s) for name in sets for s in scales]
    unit = "PSNR (dB) / SSIM" if with_ssim else "PSNR (dB)"
    lines = [
        "| " + unit + " | " + " | ".join(f"{name} x{s}" for name, s in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for label in labels:
        lines.append(
            f"| {label} | " + " | ".join(cell(results[(label, name, s)], with_ssim) for name, s in cols) + " |"
        )
    return "\n".join(lines)


# --- speed -----------------------------------------------------------------------------------


def synthesise_clip(folder: str, n: int) -> str:
    """A 640x360 yuv420p clip of moving gradients and edges, for when the sample is absent."""
    import av

    path = os.path.join(folder, "synthetic_640x360.mp4")
    h, w = 360, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    with av.open(path, "w") as out:
        try:
            stream = out.add_stream("libx264", rate=25)
        except Exception:  # noqa: BLE001 - any build without libx264
            stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            r = 128 + 100 * np.sin((xx + 3 * i) / 23.0) * np.cos(yy / 31.0)
            g = 128 + 90 * np.sin((xx * 0.7 + yy * 0.7 - 5 * i) / 11.0)
            b = np.where(((xx + 2 * i) // 40 + yy // 40) % 2 == 0, 220.0, 40.0)
            rgb = np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def opencv_timer(cv2, model_path: Path, frames_rgb: list[np.ndarray]):
    """A () -> seconds callable: ESPCN x2 ``upsample`` on every frame as BGR uint8 (warmed up)."""
    sr = opencv_model(cv2, model_path, "espcn", 2)
    bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames_rgb]
    out = sr.upsample(bgr[0])  # warm-up
    assert out.shape[:2] == (2 * bgr[0].shape[0], 2 * bgr[0].shape[1])
    return lambda: upsample_seconds(sr, bgr)


def pipeline_timer(video: str, n: int, chunk: int, stack):
    """A () -> seconds callable for our processing stage on the first ``n`` frames, and run info.

    The timed work is ``time_process`` of bench/common.py, as bench/pipeline_overhead.py times it:
    stack each chunk's YUV planes, allocate the output planes, run the stage's rescaler on them.
    """
    from vsr_pipe.config import PipelineOptions, Scale
    from vsr_pipe.pipeline.run import prepare

    opened = prepare(video, PipelineOptions(scale=Scale(2, 2), chunk_frames=chunk))
    stack.callback(opened.close)
    frames = decoded_planes(video, n)
    time_process(opened, frames[:chunk], chunk)  # warm-up
    src, dst = opened.plan.src, opened.plan.dst
    info = {
        "frames": len(frames),
        "input": f"{src.width}x{src.height}",
        "output": f"{dst.width}x{dst.height}",
        "model_chain": opened.plan.chain,
        "engine": opened.engine,
    }

    def run() -> float:
        seconds, outs = time_process(opened, frames, chunk)
        assert len(outs) == len(frames)
        return seconds

    return run, info


# --- main ------------------------------------------------------------------------------------


def parse_list(text: str, kind=str) -> list:
    return [kind(v.strip()) for v in text.split(",") if v.strip()]


def main() -> None:
    ap = bench_parser(__doc__, data=False)
    ap.add_argument("--data", default=str(DATA), help="folder with Set5/, Set14/, opencv_models/")
    ap.add_argument("--sets", default="Set5,Set14")
    ap.add_argument("--scales", default="2,3,4")
    ap.add_argument("--no-ssim", action="store_true", help="PSNR only (faster)")
    ap.add_argument("--frames", type=int, default=20, help="frames for the speed comparison")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes each (alternating); the best counts")
    ap.add_argument("--chunk", type=int, default=4, help="pipeline chunk_frames for the speed comparison")
    ap.add_argument("--video", default=str(SAMPLE), help="640x360 clip for the speed comparison")
    ap.add_argument("--no-speed", action="store_true", help="quality table only")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--quiet", action="store_true", help="no per-cell progress lines")
    args = ap.parse_args()

    sets = parse_list(args.sets)
    try:
        scales = parse_list(args.scales, int)
    except ValueError:
        fail(f"--scales must be integers, got '{args.scales}'")
    if args.frames < 1 or args.repeats < 1 or args.chunk < 1:
        fail("--frames, --repeats and --chunk must be at least 1")
    if not sets or not scales or any(s < 2 for s in scales):
        fail("need at least one set and scales >= 2")
    with_ssim = not args.no_ssim

    try:
        import cv2

        if not hasattr(cv2, "dnn_superres"):
            raise ImportError("no dnn_superres")
    except (ImportError, AttributeError):
        fail(f"OpenCV dnn_superres not available: pip install '{OPENCV_PIN}'")
    problem = opencv_version_problem(cv2.__version__)
    if problem:
        fail(problem)
    data = Path(args.data).resolve()
    if not data.is_dir():
        fail(f"data folder not found: {data}")
    models_dir = data / "opencv_models"
    needed = [data / name for name in sets]
    needed += [models_dir / f"{p}_x{s}.pb" for _, p, _, has in OPENCV_MODELS for s in scales if s in has]
    if not args.no_speed:
        needed += [models_dir / "ESPCN_x2.pb", data / "Set5"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        fail(f"missing data: {', '.join(missing)}")

    import torch

    from vsr_pipe.errors import WeightsError

    log = (lambda *_: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    labels = [BICUBIC] + [label for label, *_ in OPENCV_MODELS] + [OURS]
    report: dict = {
        "protocol": "HR modcrop; LR = MATLAB bicubic imresize(HR, 1/s) rounded to 8 bits; "
        "Y (BT.601) PSNR/SSIM with s pixels shaved; mean over images",
        "opencv": cv2.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "cpu_count": os.cpu_count(),
        "data": str(data),
    }

    try:
        log("quality:")
        results = evaluate_all(cv2, data, sets, scales, with_ssim, log)
    except WeightsError as e:
        fail(str(e))
    print(f"## Quality ({report['protocol']})\n")
    print(markdown_table(results, labels, sets, scales, with_ssim))
    print()
    report["quality"] = [
        {"method": label, "set": name, "scale": s, "psnr": sc.psnr,
         "ssim": None if math.isnan(sc.ssim) else sc.ssim,
         "per_image": [{"image": i, "psnr": p, "ssim": None if math.isnan(q) else q} for i, p, q in sc.per_image]}
        for (label, name, s), sc in results.items() if sc is not None
    ]  # fmt: skip

    if not args.no_speed:
        with tempfile.TemporaryDirectory() as tmp:
            video = args.video
            synthetic = not Path(video).is_file()
            if synthetic:
                log(f"{video} not found: synthesising a 640x360 clip")
                video = synthesise_clip(tmp, args.frames)
            log("speed:")
            frames_rgb = decoded_arrays(video, args.frames, "rgb24")
            if not frames_rgb:
                fail(f"no frames decoded from {video}")
            n = len(frames_rgb)
            with contextlib.ExitStack() as stack:
                try:
                    ours_run, info = pipeline_timer(video, n, args.chunk, stack)
                except WeightsError as e:
                    fail(str(e))
                cv_run = opencv_timer(cv2, models_dir / "ESPCN_x2.pb", frames_rgb)
                cv_times, ours_times = [], []
                for r in range(args.repeats):  # alternate, so background load hits both alike
                    cv_times.append(cv_run())
                    ours_times.append(ours_run())
                    log(f"  repeat {r + 1}: OpenCV {n / cv_times[-1]:.2f} fps, ours {n / ours_times[-1]:.2f} fps")
            cv_s, ours_s = min(cv_times), min(ours_times)
        if info["frames"] != n:
            fail(f"decoded {n} RGB frames but {info['frames']} pipeline frames")
        cv_fps, ours_fps = n / cv_s, n / ours_s
        # PSNR on Set5 x2 for the two rows timed here: from the table, or measured now.
        set5 = {}
        for label in ("OpenCV ESPCN", OURS):
            score = results.get((label, "Set5", 2))
            if score is None:
                from vsr_pipe.quality.images import evaluate_folder

                up = our_upscaler(2) if label == OURS else opencv_upscaler(cv2, models_dir / "ESPCN_x2.pb", "espcn", 2)
                score = evaluate_folder(data / "Set5", 2, up, with_ssim=with_ssim)
            set5[label] = score
        src_name = "synthetic clip" if synthetic else Path(args.video).name
        print(f"## Speed: ESPCN x2, {n} frames {info['input']} -> {info['output']} ({src_name})\n")
        print(f"torch threads {report['torch_threads']}, OpenCV threads {report['opencv_threads']}, "
              f"os.cpu_count() {report['cpu_count']}; ours: {info['model_chain']}, engine {info['engine']}, "
              f"chunk {args.chunk}\n")  # fmt: skip
        print(f"best of {args.repeats} alternating passes each\n")
        print(f"| ESPCN x2 | fps | s/frame | Set5 x2 {'PSNR / SSIM' if with_ssim else 'PSNR'} |")
        print("|---|---|---|---|")
        print(
            f"| OpenCV ESPCN (upsample, BGR uint8) | {cv_fps:.2f} | {cv_s / n:.3f} | {cell(set5['OpenCV ESPCN'], with_ssim)} |"
        )
        print(
            f"| vsr-pipe ESPCN (process stage, YUV planes) | {ours_fps:.2f} | {ours_s / n:.3f} | {cell(set5[OURS], with_ssim)} |"
        )
        print(f"\nratio ours / OpenCV fps = {ours_fps / cv_fps:.2f}x; "
              f"Set5 x2 PSNR ours - OpenCV = {set5[OURS].psnr - set5['OpenCV ESPCN'].psnr:+.2f} dB")  # fmt: skip
        report["speed"] = {
            **info,
            "source": src_name,
            "chunk": args.chunk,
            "repeats": args.repeats,
            "opencv_espcn_x2": {"seconds": cv_s, "all_seconds": cv_times, "fps": cv_fps,
                                "set5_x2_psnr": set5["OpenCV ESPCN"].psnr},
            "vsr_pipe_espcn_x2": {"seconds": ours_s, "all_seconds": ours_times, "fps": ours_fps,
                                  "set5_x2_psnr": set5[OURS].psnr},
            "fps_ratio_ours_over_opencv": ours_fps / cv_fps,
        }  # fmt: skip

    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
