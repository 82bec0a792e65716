"""The codec-aware restorer on real camera video: what it adds over the generic ESPCN on the same
coded LR, before any per-title codes (issue #17: the start every delivered title is fitted from).

For each real clip of ../shared/data/video (the masters of bench/rd.py: downscaled x2 first, the
first 120 frames), the LR by MATLAB bicubic at the factor, coded in memory by x264 and x265 (preset
medium) at each CRF and decoded; then restored by ESPCN and by the shipped restorer delivery starts
from for that codec (``espcn_y_x{r}_codec``, or ``espcn_y_x{r}_codec_hevc`` for x265), and by any
training checkpoints named with --checkpoint PATH:FEATURES:BLOCKS. Y-PSNR per frame against the
master, whole frame, mean; neither clip is trained on.

    python bench/codec_aware.py --scale 2 [--checkpoint runs/codec_x2/checkpoint.safetensors:16:4]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_parser, load_checkpoint_or_exit  # noqa: E402
from bench.rd import CLIPS, master_frames, resize, y_psnr  # noqa: E402


def main() -> None:
    from vsr_pipe.io.codec_roundtrip import code_frames, gray_frames
    from vsr_pipe.models.correction import Corrected
    from vsr_pipe.models.matlab_resize import imresize_matrix
    from vsr_pipe.weights.shipped import codec_aware_name
    from vsr_pipe.weights.store import load_model, shipped_path

    ap = bench_parser(__doc__, data=False)
    ap.add_argument("--scale", type=int, default=2, choices=(2, 3))
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--crfs", default="33,38,43,48")
    ap.add_argument("--codecs", default="libx264,libx265")
    ap.add_argument("--checkpoint", action="append", default=[], help="PATH:FEATURES:BLOCKS of a codec_aware run")
    args = ap.parse_args()
    r = args.scale
    espcn = load_model(shipped_path(f"espcn_y_x{r}")).eval()
    codecs = args.codecs.split(",")
    shipped = {c: load_model(shipped_path(codec_aware_name(r, c))).eval() for c in codecs}  # what delivery starts from
    checkpoints = {Path(spec.split(":")[0]).parent.name: Corrected(espcn, _checkpoint(spec, r).eval()) for spec in args.checkpoint}
    gains: dict[str, list[float]] = {name: [] for name in ("shipped", *checkpoints)}
    for clip in ("car", "person"):
        src, prescale, _ = CLIPS[clip]
        ref = [planes[0] for planes in master_frames(src, args.frames, prescale)[0]]
        h, w = ref[0].shape[0] // (2 * r) * 2 * r, ref[0].shape[1] // (2 * r) * 2 * r  # 4:2:0 LR
        ref = [y[:h, :w] for y in ref]
        lr = [resize(y, h // r, w // r, imresize_matrix) for y in ref]
        for codec in codecs:
            models = {"shipped": shipped[codec], **checkpoints}
            for crf in (float(c) for c in args.crfs.split(",")):
                coded = code_frames(gray_frames(lr), codec, crf, "medium")
                x = torch.from_numpy(np.stack(coded.luma)).unsqueeze(1).float() / 255
                with torch.no_grad():
                    generic = y_psnr(_codes(espcn(x)), ref)
                    row = {name: y_psnr(_codes(m(x)), ref) - generic for name, m in models.items()}
                for name, gain in row.items():
                    gains[name].append(gain)
                print(f"{clip} {codec} CRF {crf:g}: LR {coded.bytes} B, ESPCN {generic:.2f} dB; "
                      + ", ".join(f"{n} {g:+.3f}" for n, g in row.items()), flush=True)  # fmt: skip
    print("mean gain over ESPCN: " + ", ".join(f"{n} {np.mean(g):+.3f} dB" for n, g in gains.items()))


def _checkpoint(spec: str, scale: int):
    """The correction of a ``PATH:FEATURES:BLOCKS`` checkpoint, or exit with one line saying why not."""
    from vsr_pipe.models.correction import CorrectionNet

    want = "PATH:FEATURES:BLOCKS of a codec_aware run"
    try:
        path, features, blocks = spec.rsplit(":", 2)
        net = CorrectionNet(scale, int(features), int(blocks))
    except ValueError as e:
        raise SystemExit(f"--checkpoint {spec}: {str(e).splitlines()[0]} (want {want})") from None
    load_checkpoint_or_exit(path, net, f"a {features}x{blocks} correction", want)
    return net


def _codes(out: torch.Tensor) -> list[np.ndarray]:
    return [np.clip(np.round(o[0].numpy() * 255), 0, 255).astype(np.uint8) for o in out]


if __name__ == "__main__":
    main()
