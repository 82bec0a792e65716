"""The invertible rescaler's figures for the README, the field's way (``papers.md`` §2, §7).

    python bench/rescaling.py [--data ../shared/data] [--weights FILE] [--json PATH] [--quick]
    python bench/rescaling.py --markdown PATH      # the README's tables from a saved --json

Per set (Set5, Set14), Y-PSNR/SSIM; restored twice: from z ~ N(0, 1) with a fixed seed (the papers'
protocol, keys without suffix) and from z = 0 (what video restoration runs, keys ending in ``_z0``):
  * x2, x4: restored from the model's own 8-bit LR, and the LR against the MATLAB-bicubic LR;
    beside bicubic-down + our ESPCN-up and bicubic-down + bicubic-up on the same images.
  * x1.5, x2.5, x3.5 and the asymmetric 1.5x2 (width 1.5, height 2), beside AIDN's Set5 figures.
  * cycle idempotence: five down-up cycles against one.
  * stored as a user would: the LR coded with H.264 (libx264, one intra frame per image, CRF 18
    and 23) before restoring, against bicubic-down + ESPCN-up from an H.264 LR of at least the
    same size in bits (the bicubic LR's CRF lowered until it spends as many bits).
Also parameters and GMAC per HR megapixel (one direction) of the rescaler at several factors.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

from bench.common import H264Channel, bench_parser  # noqa: E402
from vsr_pipe.models.matlab_resize import imresize  # noqa: E402
from vsr_pipe.models.rescaler import ArbitraryRescaler, RescaleGeometry  # noqa: E402
from vsr_pipe.quality.imagefiles import list_images, load_rgb, modcrop  # noqa: E402
from vsr_pipe.quality.images import bicubic_upscaler, evaluate_folder, model_upscaler  # noqa: E402
from vsr_pipe.quality.metrics import psnr, rgb_to_y, shave  # noqa: E402
from vsr_pipe.quality.rescaling import evaluate_rescaling  # noqa: E402
from vsr_pipe.weights.store import load_model, shipped_path  # noqa: E402

AIDN_SET5 = {1.5: (50.61, 48.56), 2.5: (40.77, 46.04), 3.5: (37.25, 44.21)}  # restored, LR (Y), papers.md §7
IRN_SET5 = {2.0: 43.99, 4.0: 36.19}
IRN_SET14 = {2.0: 40.79, 4.0: 32.67}


def espcn_from_coded_bicubic(folder: Path, espcn: torch.nn.Module, channel: H264Channel) -> float:
    """Mean Y-PSNR of bicubic-down, H.264 round trip of the LR's Y, ESPCN x2 up (2 px shaved)."""
    scores = []
    for path in list_images(folder):
        hr = modcrop(load_rgb(path), 2)
        lr_y = rgb_to_y(np.clip(np.round(imresize(hr, 0.5)), 0, 255))
        coded = np.clip(np.round(channel(np.round(lr_y))), 0, 255)
        with torch.no_grad():
            sr = espcn(torch.from_numpy(coded / 255).float()[None, None])[0, 0].double().numpy()
        sr = np.clip(np.round(sr * 255), 0, 255)
        scores.append(psnr(shave(sr, 2), shave(rgb_to_y(hr), 2)))
    return float(np.mean(scores))


def cost(model: ArbitraryRescaler, factor: float, size=(1080, 1920)) -> float:
    """GMAC per HR megapixel of one direction (convolutions and the resampling matmuls)."""
    g = RescaleGeometry.for_factor(*size, factor, factor)
    total = [0]

    def hook(mod, inp, out):
        total[0] += out.numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1] // mod.groups

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    t = g.tensors()
    with torch.no_grad():
        model.down(torch.rand(1, 1, *g.hr), t.up_rows, t.up_cols, t.conds)
    for h in hooks:
        h.remove()
    (hh, ww), (ih, iw) = g.hr, g.inner
    if (ih, iw) != (hh, ww):
        total[0] += ih * hh * ww + ih * ww * iw
    return total[0] / (hh * ww) / 1e3  # MAC per pixel / 1e3 = GMAC per megapixel


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(results: dict) -> str:
    """The README's tables from :func:`main`'s results."""
    sets = [s for s in ("Set5", "Set14") if s in results]
    lines = ["| Y-PSNR (dB) | " + " | ".join(f"{s} ×{f}" for f in (2, 4) for s in sets) + " |",
             "|---|" + "---|" * (2 * len(sets))]  # fmt: skip
    rows = [
        ("restored, z ~ N(0, 1) (**the papers' protocol, the bar**)", "restored"),
        ("restored, z = 0 (what video restoration runs)", "restored_z0"),
        ("bicubic down + vsr-pipe ESPCN up", "espcn"),
        ("bicubic down + bicubic up", "bicubic"),
        ("LR against MATLAB bicubic (bar ≥ 38)", "lr"),
    ]
    for label, key in rows:
        cells = [_f(results[s][f"x{f}"].get(key)) for f in (2, 4) for s in sets]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| IRN (published; 1.66 M / 4.35 M parameters) | " + " | ".join(
        _f((IRN_SET5 if s == "Set5" else IRN_SET14)[float(f)]) for f in (2, 4) for s in sets) + " |")  # fmt: skip
    lines += ["", "| Set5, Y-PSNR (dB) | ×1.5 | ×2.5 | ×3.5 | 1.5 (w) × 2 (h) |", "|---|---|---|---|---|"]
    keys = ("x1.5", "x2.5", "x3.5", "x1.5x2")
    set5 = results.get("Set5", {})
    for label, key in (
        ("restored, z ~ N(0, 1)", "restored"),
        ("restored, z = 0", "restored_z0"),
        ("LR against MATLAB bicubic", "lr"),
    ):
        lines.append(f"| {label} | " + " | ".join(_f(set5.get(k, {}).get(key)) for k in keys) + " |")
    lines.append("| AIDN restored (published) | " + " | ".join(_f(AIDN_SET5[f][0]) for f in (1.5, 2.5, 3.5)) + " | – |")
    lines.append("| AIDN LR (published) | " + " | ".join(_f(AIDN_SET5[f][1]) for f in (1.5, 2.5, 3.5)) + " | – |")
    lines += ["", "| Set5, five down-up cycles against one | ×1.5 | ×2 | ×4 |", "|---|---|---|---|"]
    for label, suffix in (("z ~ N(0, 1)", ""), ("z = 0", "_z0")):
        cells = []
        for k in ("x1.5", "x2", "x4"):
            r = set5.get(k, {})
            one, five = r.get(f"restored{suffix}"), r.get(f"restored{suffix}_5_cycles")
            cells.append("–" if five is None else f"{_f(five)} vs {_f(one)} ({five - one:+.2f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| Set5 ×2, LR coded with H.264 (intra, libx264 medium) | CRF 18 | CRF 23 |", "|---|---|---|"]
    coded = [set5.get(f"x2_h264_crf{c}", {}) for c in (18, 23)]
    lines.append("| irn restored, z ~ N(0, 1) | " + " | ".join(_f(c.get("restored")) for c in coded) + " |")
    lines.append("| irn restored, z = 0 | " + " | ".join(_f(c.get("restored_z0")) for c in coded) + " |")
    lines.append("| irn LR size (kbit, all 5 images) | " + " | ".join(_f(c.get("kbit"), 0) for c in coded) + " |")
    lines.append("| bicubic + ESPCN, same CRF | " + " | ".join(_f(c.get("espcn_same_crf")) for c in coded) + " |")
    lines.append("| bicubic + ESPCN, at least the same bits (its CRF) | " + " | ".join(
        f"{_f(c.get('espcn_same_bits'))} (CRF {c.get('espcn_crf')}, {_f(c.get('espcn_kbit'), 0)} kbit)" if c else "–"
        for c in coded) + " |")  # fmt: skip
    gmac = results.get("gmac_per_hr_mp", {})
    lines += ["", f"Parameters: {results.get('parameters', 0):,}. GMAC per HR megapixel, one direction: "
              + ", ".join(f"{k.replace('x', '×')} {v}" for k, v in gmac.items()) + " (IRN ×2 ≈ 416, ×4 ≈ 584)."]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    ap = bench_parser(__doc__)
    ap.add_argument("--weights", default=None, help="irn weights (default: the shipped irn_y)")
    ap.add_argument("--sets", default="Set5,Set14")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--quick", action="store_true", help="x2/x4 and LR only (no cycles, codec, arbitrary)")
    ap.add_argument("--markdown", metavar="JSON", help="print the README tables from a saved --json and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    data = Path(args.data)
    if not (data / "Set5").is_dir():
        print(f"bench/rescaling.py: no benchmark images under {data} (give --data)")
        return 2
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = load_model(args.weights or shipped_path("irn_y")).eval()
    espcn = {s: load_model(shipped_path(f"espcn_y_x{s}")).eval() for s in (2, 4)}
    results: dict = {"parameters": sum(p.numel() for p in model.parameters()),
                     "gmac_per_hr_mp": {f"x{f:g}": round(cost(model, f), 1) for f in (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)}}  # fmt: skip
    print(f"parameters {results['parameters']}; GMAC per HR megapixel, one direction: {results['gmac_per_hr_mp']}")
    print("  (IRN x2: ~416, x4: ~584 per papers.md section 2)")
    started = time.time()
    for set_name in args.sets.split(","):
        folder = data / set_name
        rows: dict = {}
        for f in (2.0, 4.0):
            r = evaluate_rescaling(folder, model, f)
            r0 = evaluate_rescaling(folder, model, f, temperature=0.0)
            sr = evaluate_folder(folder, int(f), model_upscaler(espcn[int(f)]))
            bic = evaluate_folder(folder, int(f), bicubic_upscaler)
            rows[f"x{f:g}"] = {"restored": r.psnr, "restored_ssim": r.ssim, "restored_z0": r0.psnr, "restored_z0_ssim": r0.ssim,
                               "lr": r.lr_psnr, "lr_ssim": r.lr_ssim, "espcn": sr.psnr, "bicubic": bic.psnr}  # fmt: skip
            print(f"{set_name} x{f:g}: restored z~N(0,1) {r.psnr:.2f} dB / {r.ssim:.4f}, z=0 {r0.psnr:.2f} / {r0.ssim:.4f} "
                  f"(bicubic+ESPCN {sr.psnr:.2f}; bicubic {bic.psnr:.2f}); LR vs bicubic {r.lr_psnr:.2f} dB", flush=True)  # fmt: skip
        if not args.quick:
            for fy, fx in ((1.5, 1.5), (2.5, 2.5), (3.5, 3.5), (2.0, 1.5)):
                r = evaluate_rescaling(folder, model, fy, fx, with_ssim=False)
                r0 = evaluate_rescaling(folder, model, fy, fx, with_ssim=False, temperature=0.0)
                key = f"x{fx:g}" if fx == fy else f"x{fx:g}x{fy:g}"
                rows[key] = {"restored": r.psnr, "restored_z0": r0.psnr, "lr": r.lr_psnr}
                anchor = AIDN_SET5.get(fx) if fx == fy and set_name == "Set5" else None
                extra = f" (AIDN {anchor[0]:.2f} / LR {anchor[1]:.2f})" if anchor else ""
                print(
                    f"{set_name} {key}: restored z~N(0,1) {r.psnr:.2f} dB, z=0 {r0.psnr:.2f} dB, LR vs bicubic {r.lr_psnr:.2f} dB{extra}",
                    flush=True,
                )
            for f in (1.5, 2.0, 4.0):
                row = rows[f"x{f:g}"]
                for suffix, temp in (("", 1.0), ("_z0", 0.0)):
                    five = evaluate_rescaling(folder, model, f, cycles=5, with_ssim=False, temperature=temp).psnr
                    row[f"restored{suffix}_5_cycles"] = five
                    one = row[f"restored{suffix}"]
                    print(
                        f"{set_name} x{f:g} z{'=0' if temp == 0 else '~N(0,1)'}: 5 cycles {five:.2f} dB vs 1 cycle {one:.2f} dB ({five - one:+.2f})",
                        flush=True,
                    )
            for crf in (18, 23):
                ch = H264Channel(crf)
                r = evaluate_rescaling(folder, model, 2.0, channel=ch, with_ssim=False)
                r0 = evaluate_rescaling(folder, model, 2.0, channel=H264Channel(crf), with_ssim=False, temperature=0.0)
                bic_crf, sr_psnr, bic_bits = crf, 0.0, 0
                while True:  # lower the bicubic LR's CRF until it spends at least the bits irn's did
                    bch = H264Channel(bic_crf)
                    sr_psnr = espcn_from_coded_bicubic(folder, espcn[2], bch)
                    bic_bits = bch.bits
                    if bic_bits >= ch.bits or bic_crf <= 0:
                        break
                    bic_crf -= 1
                same_crf = espcn_from_coded_bicubic(folder, espcn[2], H264Channel(crf))
                rows[f"x2_h264_crf{crf}"] = {"restored": r.psnr, "restored_z0": r0.psnr, "kbit": ch.bits / 1e3, "espcn_same_crf": same_crf,
                                             "espcn_same_bits": sr_psnr, "espcn_crf": bic_crf, "espcn_kbit": bic_bits / 1e3}  # fmt: skip
                print(f"{set_name} x2 H.264 CRF {crf}: irn restored z~N(0,1) {r.psnr:.2f} dB, z=0 {r0.psnr:.2f} dB at {ch.bits / 1e3:.0f} kbit; "
                      f"bicubic+ESPCN {same_crf:.2f} dB at the same CRF, {sr_psnr:.2f} dB at CRF {bic_crf} "
                      f"({bic_bits / 1e3:.0f} kbit)", flush=True)  # fmt: skip
        results[set_name] = rows
    print(f"({time.time() - started:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
