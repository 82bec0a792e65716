"""What the benchmark scripts share: where things are, decoded frames, the pipeline's processing
stage on them, an H.264 round trip that counts bits, OpenCV's dnn_superres models, and the
protocol for non-integer factors. Run the scripts as ``python bench/NAME.py`` (or ``python -m bench.NAME``).
"""

from __future__ import annotations

import argparse
import io
import math
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "big_buck_bunny_640x360.mp4"
DATA = ROOT.parent / "shared" / "data"


def bench_parser(doc: str | None, data: bool = True) -> argparse.ArgumentParser:
    """A parser whose help is the script's docstring as written; with ``data``, a ``--data`` folder."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if data:
        ap.add_argument("--data", default=str(DATA))
    return ap


# --- frames ------------------------------------------------------------------------------------


def decoded_arrays(path: str | Path, n: int, fmt: str) -> list[np.ndarray]:
    """The first ``n`` frames as PyAV ndarrays of ``fmt`` (``rgb24``, ``bgr24``, ``gray``, ...)."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format=fmt))
            if len(frames) == n:
                break
    return frames


def decoded_planes(path: str | Path, n: int | None = None) -> list[list[np.ndarray]]:
    """The first ``n`` frames (all with None) as the pipeline's planes, copied out of the decoder."""
    from vsr_pipe.io.base import Frame
    from vsr_pipe.io.decode import AvSource

    frames = []
    with AvSource(str(path)) as src:
        for item in src.items():
            if isinstance(item, Frame):
                frames.append([p.copy() for p in item.planes])
                if len(frames) == n:
                    break
    return frames


def bars_clip(path: str | Path, width: int, height: int, frames: int, fps: int | Fraction = 24) -> Path:
    """A synthetic H.264 clip (lossless x264 ultrafast, yuv420p, no audio; container by suffix) of
    four constant bars and a white square moving along the bottom, the picture ``tests/media.py``
    draws (the benches may not import the tests). ``width`` and ``height`` even, in pixels."""
    import av

    bars = ((150, 100, 160), (120, 90, 120), (100, 160, 105), (80, 135, 150))  # 8-bit Y, U, V
    edges = [0] + [(i * width // 4) & ~1 for i in range(1, 4)] + [width]
    yuv = np.empty((3, height, width), np.uint8)
    for (y, u, v), x0, x1 in zip(bars, edges, edges[1:]):
        yuv[:, :, x0:x1] = np.array((y, u, v), np.uint8)[:, None, None]
    side = max(2, (height // 10) & ~1)
    band = math.ceil(height * 0.8)  # the square moves below the bars' measured rows, as there
    top = max(0, min(height - side, band + max(0, height - band - side) // 2) & ~1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = 12
        stream.codec_context.options = {"preset": "ultrafast", "qp": "0"}
        for i in range(frames):
            planes = yuv.copy()
            x0 = (i * 4) % max(1, width - side) & ~1
            planes[:, top : top + side, x0 : x0 + side] = np.array((235, 128, 128), np.uint8)[:, None, None]
            stacked = np.concatenate([planes[0].ravel(), planes[1, ::2, ::2].ravel(), planes[2, ::2, ::2].ravel()])
            frame = av.VideoFrame.from_ndarray(stacked.reshape(height * 3 // 2, width), format="yuv420p")
            frame.pts, frame.time_base = i, 1 / Fraction(fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return Path(path)


def time_process(opened, frames: list[list[np.ndarray]], chunk: int) -> tuple[float, list[list[np.ndarray]]]:
    """Seconds of the whole processing stage of an opened run (``vsr_pipe.pipeline.run.prepare``):
    model + conversions + chroma, chunk by chunk; and the output frames' planes, to encode."""
    rescaler, out_layout = opened.run.stages.rescaler, opened.plan.dst
    outs = []
    t = time.perf_counter()
    for i in range(0, len(frames), chunk):
        group = frames[i : i + chunk]
        planes_in = [np.stack([f[p] for f in group]) for p in range(len(group[0]))]
        planes_out = [
            np.zeros((len(group), *out_layout.plane_size(p)), planes_in[0].dtype) for p in range(len(group[0]))
        ]
        rescaler(planes_in, planes_out)
        outs += [[p[k] for p in planes_out] for k in range(len(group))]
    return time.perf_counter() - t, outs


def tensor_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two tensors of values in [0, 1] (clamped first); inf when equal."""
    mse = ((a.float().clamp(0, 1) - b.float().clamp(0, 1)) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


# --- OpenCV ------------------------------------------------------------------------------------


def opencv_model(cv2, model_path: Path, algo: str, scale: int):
    """A dnn_superres model read from ``model_path`` (e.g. ``ESPCN_x2.pb``, algo "espcn")."""
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(str(model_path))
    sr.setModel(algo, scale)
    return sr


def upsample_seconds(sr, frames_bgr: list[np.ndarray]) -> float:
    """Seconds of ``sr.upsample`` over every frame (BGR uint8), once."""
    t = time.perf_counter()
    for frame in frames_bgr:
        sr.upsample(frame)
    return time.perf_counter() - t


# --- coding ------------------------------------------------------------------------------------


class H264Channel:
    """Codes an 8-bit Y plane as one H.264 intra frame at a CRF and decodes it; counts the bits."""

    def __init__(self, crf: float):
        self.crf, self.bits = crf, 0

    def __call__(self, y: np.ndarray) -> np.ndarray:
        import av

        h, w = y.shape
        ph, pw = h + h % 2, w + w % 2  # 4:2:0 wants even sides: pad by edge replication, crop after
        padded = np.pad(y.astype(np.uint8), ((0, ph - h), (0, pw - w)), mode="edge")
        buf = io.BytesIO()
        with av.open(buf, "w", format="h264") as out:
            stream = out.add_stream("libx264", rate=1, options={"crf": f"{self.crf:g}", "preset": "medium"})
            stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
            frame = av.VideoFrame(pw, ph, "yuv420p")
            frame.planes[0].update(np.ascontiguousarray(_strided(padded, frame.planes[0].line_size)))
            for plane in frame.planes[1:]:
                plane.update(np.full(plane.line_size * plane.height, 128, np.uint8))
            for packet in [*stream.encode(frame), *stream.encode()]:
                self.bits += packet.size * 8
                out.mux(packet)
        buf.seek(0)
        with av.open(buf, "r", format="h264") as inp:
            decoded = next(inp.decode(video=0))
        plane = decoded.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        return rows[:h, :w].astype(np.float64)


def _strided(plane: np.ndarray, line_size: int) -> np.ndarray:
    out = np.zeros((plane.shape[0], line_size), np.uint8)
    out[:, : plane.shape[1]] = plane
    return out


# --- non-integer factors -----------------------------------------------------------------------


def noninteger_pairs(folder: Path, s: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(HR Y, LR Y) float64 codes per image of ``folder``: HR cropped so that HR / s is a whole size,
    LR by MATLAB bicubic of the RGB HR, rounded to 8 bits."""
    from fractions import Fraction

    from vsr_pipe.models.matlab_resize import imresize
    from vsr_pipe.quality.imagefiles import list_images, load_rgb
    from vsr_pipe.quality.metrics import rgb_to_y

    m = Fraction(s).limit_denominator(8).numerator  # HR sides must be multiples of it for an exact LR size
    for path in list_images(folder):
        hr = load_rgb(path)
        hr = hr[: hr.shape[0] - hr.shape[0] % m, : hr.shape[1] - hr.shape[1] % m]
        lr = np.clip(np.round(imresize(hr, size=(int(hr.shape[0] / s), int(hr.shape[1] / s)))), 0, 255)
        yield rgb_to_y(hr), rgb_to_y(lr)


def noninteger_psnr(sr_y: np.ndarray, hr_y: np.ndarray, s: float) -> float:
    """Y-PSNR of an upscale (rounded to 8 bits here) with ceil(s) border pixels shaved."""
    from vsr_pipe.quality.metrics import psnr, shave

    border = math.ceil(s)
    return psnr(shave(np.clip(np.round(sr_y), 0, 255), border), shave(hr_y, border))


def load_checkpoint_or_exit(path: str, model: torch.nn.Module, what: str, want: str) -> None:
    """A training checkpoint's tensors into ``model``, or exit with one line saying why not: ``what``
    names the model its tensors must fit, ``want`` what the flag takes."""
    from vsr_pipe.train.checkpoint import load_checkpoint

    try:
        load_checkpoint(path, model, None)
    except RuntimeError:  # load_state_dict: another model's or another shape's tensors
        raise SystemExit(f"--checkpoint {path}: its tensors are not {what}'s") from None
    except Exception as e:  # missing, a folder, not safetensors: one line, not a traceback
        why = str(e).splitlines()[0]
        raise SystemExit(f"--checkpoint {path}: {why} (want {want})") from None
