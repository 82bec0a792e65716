"""Static INT8 (ONNX Runtime QDQ, calibrated) for the live paths' models: speed against fp32 on a
640x360 frame and the quality it costs on Set5/Set14 x2 (Y-PSNR, MATLAB bicubic LR, border cropped).

    python bench/live_int8.py [--models espcn_y_x2,espcn_y_x2_f16x8] [--threads 2]

Each model is exported with its weights, then quantised several ways (calibrated on 8 frames of the
sample, per-channel INT8 weights, UInt8 activations): every Conv by min-max, every Conv by the
99.999th percentile, every Conv but the last (its output is the residual added to the frame), the
middle Conv alone (percentile, entropy); and the way ``--live`` ships (``ort_session.quantise``: the
middle Conv alone, its input range [-1, 1] and output range [-2, 2] fixed by the tanh around it),
beside the same with output ranges +-1.25, +-3 and +-6.
Prints ms per frame (median of 8) and the dB each loses against fp32.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from vsr_pipe.engines.onnx_export import export_onnx
from vsr_pipe.models.matlab_resize import imresize
from vsr_pipe.quality.imagefiles import list_images, load_rgb
from vsr_pipe.quality.metrics import rgb_to_y
from vsr_pipe.weights.shipped import shipped_path
from vsr_pipe.weights.store import load_model

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "big_buck_bunny_640x360.mp4"
DATA = ROOT.parent / "shared" / "data"
WAYS = {  # name: (calibration, nodes left in fp32 besides every non-Conv op)
    "int8 min-max": (CalibrationMethod.MinMax, []),
    "int8 percentile": (CalibrationMethod.Percentile, []),
    "int8 all but last conv": (CalibrationMethod.MinMax, ["/conv_last/Conv"]),
    "int8 middle conv only": (CalibrationMethod.Percentile, ["/conv_first/Conv", "/conv_last/Conv"]),
    "int8 middle conv, entropy": (CalibrationMethod.Entropy, ["/conv_first/Conv", "/conv_last/Conv"]),
}


def sample_frames(count: int = 8, every: int = 20) -> list[np.ndarray]:
    frames = []
    with av.open(str(SAMPLE)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every == 0:
                frames.append(frame.to_ndarray(format="gray").astype(np.float32)[None, None] / 255)
            if len(frames) == count:
                break
    return frames


class Frames(CalibrationDataReader):
    def __init__(self, frames: list[np.ndarray]):
        self.frames = iter(frames)

    def get_next(self):
        x = next(self.frames, None)
        return None if x is None else {"lr": x}


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ms_per_frame(s: ort.InferenceSession, x: np.ndarray, repeats: int = 8) -> float:
    s.run(None, {"lr": x})
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        s.run(None, {"lr": x})
        times.append(time.perf_counter() - started)
    return round(1000 * float(np.median(times)), 1)


def set_psnr(s: ort.InferenceSession, folder: Path, r: int) -> float:
    values = []
    for f in list_images(str(folder)):
        y = rgb_to_y(load_rgb(f)).astype(np.float64)
        y = y[: y.shape[0] // r * r, : y.shape[1] // r * r]
        lr = np.clip(np.round(imresize(y, 1 / r)), 0, 255)
        out = s.run(None, {"lr": (lr / 255).astype(np.float32)[None, None]})[0][0, 0]
        d = (np.clip(np.round(out * 255), 0, 255) - y)[r:-r, r:-r]
        values.append(10 * np.log10(255**2 / np.mean(d**2)))
    return float(np.mean(values))


def _shipped_way(name: str, folder: Path, edge: float) -> Path:
    """What ``--live`` runs (at ``edge`` 2): ``ort_session.quantise`` on the cached graph (the middle
    convolution, input range [-1, 1] and output range [-edge, edge] fixed by tanh, no calibration data)."""
    from vsr_pipe.engines.onnx_export import cached_graph, weight_arrays
    from vsr_pipe.engines.ort_session import graph_initializers, quantise

    model = load_model(shipped_path(name))
    graph, _ = cached_graph(name, model)
    path = folder / f"{name}-tanh{edge:g}.onnx"
    path.write_bytes(quantise(graph, weight_arrays(model.state_dict(), graph_initializers(graph)), edge))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="espcn_y_x2,espcn_y_x2_f16x8")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    frames = sample_frames()
    sets = [d for d in ("Set5", "Set14") if (DATA / d).is_dir()]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            fp32 = export_onnx(load_model(shipped_path(name)), Path(tmp) / f"{name}.onnx")
            pre = Path(tmp) / f"{name}-pre.onnx"
            quant_pre_process(str(fp32), str(pre))
            paths = {"fp32": fp32}
            for way, (method, excluded) in WAYS.items():
                paths[way] = Path(tmp) / f"{name}-{way.replace(' ', '_')}.onnx"
                quantize_static(str(pre), str(paths[way]), Frames(frames), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=method, op_types_to_quantize=["Conv"], nodes_to_exclude=excluded,
                                extra_options={"CalibPercentile": 99.999})  # fmt: skip
            for edge in (1.25, 2.0, 3.0, 6.0):
                label = "int8 tanh ranges, +-2 (--live's)" if edge == 2.0 else f"int8 tanh ranges, +-{edge:g}"
                paths[label] = _shipped_way(name, Path(tmp), edge)
            print(f"{name} ({args.threads} threads, 640x360 frame):")
            base_ms, base_db = None, {}
            for way, path in paths.items():
                s = session(path, args.threads)
                ms = ms_per_frame(s, frames[3])
                dbs = {d: set_psnr(s, DATA / d, 2) for d in sets}
                base_ms = base_ms or ms
                base_db = base_db or dbs
                quality = ", ".join(f"{d} {v:.2f} dB ({v - base_db[d]:+.2f})" for d, v in dbs.items())
                print(f"  {way:24s} {ms:6.1f} ms ({base_ms / ms:.2f}x fp32's speed); {quality}", flush=True)


if __name__ == "__main__":
    main()
