"""Train the invertible rescaler on a GPU for a wall-clock budget, then measure it against the shipped one.

    python bench/gpu_train_irn.py shipped --data .gpu_data --json shipped.json
    python bench/gpu_train_irn.py train --data .gpu_data --out OUT --until EPOCH_SECONDS [--device cuda]
        [--batch 32] [--lr-patch 32] [--shipped-json shipped.json] [--work DIR]

``shipped`` measures the shipped ``irn_y`` weights; ``train`` runs the project's own loop
(``vsr_pipe.train.irn.train``) with IRN's protocol (z ~ N(0, 1) in training, tau ramped to
``final_temperature`` 1), on ``DATA/T91`` + ``DATA/BSD200``, until the deadline ``--until`` (a
``time.time()`` value): a short probe measures steps per second, the run gets as many steps as fit
(cosine schedule over them), and a guard stops it at the deadline, keeping the last checkpoint.
Then it writes into ``--out``: ``irn_y_gpu.safetensors`` (the weights, with their architecture
header), ``irn_checkpoint.safetensors`` (model + Adam, to resume), and ``irn_figures.json`` (config,
steps, rate, the validation lines, Y-PSNR/SSIM restored and LR on Set5/Set14 at x2 and x4 under both
z protocols for the new and the shipped weights, and whether the new ones beat the shipped).

Figures: ``vsr_pipe.quality.rescaling.evaluate_rescaling`` (CPU), as ``bench/rescaling.py`` and the
manifest measure them; the README's bar is the papers' protocol, z ~ N(0, 1).

The loop runs on ``--device`` (``IrnTrainConfig.device``; it validates on a CPU copy) and stops at
the deadline (``IrnTrainConfig.max_seconds``); ``prepared_patches`` only lets the probe and the run
share the training planes, read once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsr_pipe.quality.rescaling import evaluate_rescaling  # noqa: E402
from vsr_pipe.train import irn  # noqa: E402
from vsr_pipe.train.checkpoint import load_checkpoint  # noqa: E402
from vsr_pipe.weights.store import load_model, manifest, save_model, shipped_path  # noqa: E402

IrnTrainConfig = irn.IrnTrainConfig
SETS, FACTORS = ("Set5", "Set14"), (2.0, 4.0)
PROBE_STEPS, PROBE_SKIP = 30, 10  # the first steps pay for cuDNN's set-up: not counted in the rate


class OutOfTime(Exception):
    """The deadline passed in the middle of a run."""


class PreparedPatches(irn.LumaPatches):
    """``LumaPatches`` over planes prepared once (a run resumes without re-reading the images);
    ``batch`` stamps each call and raises :class:`OutOfTime` past ``deadline``."""

    def __init__(self, planes: list[np.ndarray], seed: int, deadline: float):
        self.planes, self.rng, self.deadline, self.stamps = planes, np.random.default_rng(seed), deadline, []

    def batch(self, size: int, h: int, w: int) -> np.ndarray:
        if time.time() > self.deadline:
            raise OutOfTime
        self.stamps.append(time.perf_counter())
        return super().batch(size, h, w)


@contextlib.contextmanager
def prepared_patches(planes: list[np.ndarray], deadline: float, made: list):
    """Within: ``irn.train`` reads ``planes`` (each PreparedPatches it makes is appended to
    ``made``) instead of reading the image folders again, and stops at ``deadline``."""
    saved = irn.LumaPatches

    def patches(folders, seed: int = 0, *args, **kwargs) -> PreparedPatches:
        made.append(PreparedPatches(planes, seed, deadline))
        return made[-1]

    irn.LumaPatches = patches
    try:
        yield
    finally:
        irn.LumaPatches = saved


def first_images(data: Path, names: list[str], count: int) -> Path:
    """``data``, or with ``count`` > 0 a folder of the same sub-folders holding their first ``count``
    images (links): the dry run's shrunk data."""
    if count <= 0:
        return data
    from vsr_pipe.quality.imagefiles import list_images

    short = Path(tempfile.mkdtemp(prefix="irn-few-"))
    for name in names:
        (short / name).mkdir()
        for path in list_images(data / name)[:count]:
            (short / name / path.name).symlink_to(path.resolve())
    return short


def training_planes(data: Path, log=print) -> list[np.ndarray]:
    """The planes ``LumaPatches`` makes of DATA/T91 + DATA/BSD200."""
    return irn.LumaPatches([data / "T91", data / "BSD200"], log=log).planes


def config_for(args, out_dir: Path, steps: int, device: torch.device, deadline: float) -> IrnTrainConfig:
    return IrnTrainConfig(
        train_dirs=(str(args.data / "T91"), str(args.data / "BSD200")),
        val_dir=str(args.eval_data / "Set5"),
        out_dir=str(out_dir),
        steps=steps,
        batch=args.batch,
        lr_patch=args.lr_patch,
        final_temperature=1.0,
        init_from=args.init_from,
        threads=args.threads,
        eval_every=max(1, steps // 2),  # validation lines at half-way and at the end
        checkpoint_every=max(1, min(250, steps // 10)),
        seed=args.seed,
        device=str(device),
        max_seconds=max(1.0, deadline - time.time()),
    )


def probe_rate(args, planes, device: torch.device, work: Path) -> float:
    """Steps per second of the real loop at these sizes (a throwaway run of PROBE_STEPS)."""
    made: list[PreparedPatches] = []
    cfg = dataclasses.replace(config_for(args, work / "probe", PROBE_STEPS, device, time.time() + 120), val_dir=None)
    with prepared_patches(planes, time.time() + 120, made), contextlib.suppress(OutOfTime):
        irn.train(cfg, log=lambda *_: None)
    stamps = made[-1].stamps if made else []
    if len(stamps) <= PROBE_SKIP + 1:
        return 1.0
    return (len(stamps) - 1 - PROBE_SKIP) / (stamps[-1] - stamps[PROBE_SKIP])


def figures(model: torch.nn.Module, data: Path, sets=SETS, factors=FACTORS) -> dict:
    """{set: {"x2": {psnr, ssim, psnr_z0, ssim_z0, lr_psnr, lr_ssim}}} as the manifest keeps them."""
    model = model.cpu().eval()
    out: dict[str, dict] = {}
    for name in sets:
        for f in factors:
            noisy = evaluate_rescaling(data / name, model, f, temperature=1.0)
            zero = evaluate_rescaling(data / name, model, f, temperature=0.0)
            out.setdefault(name, {})[f"x{f:g}"] = {
                "psnr": round(noisy.psnr, 3), "ssim": round(noisy.ssim, 4),
                "psnr_z0": round(zero.psnr, 3), "ssim_z0": round(zero.ssim, 4),
                "lr_psnr": round(zero.lr_psnr, 3), "lr_ssim": round(zero.lr_ssim, 4),
            }  # fmt: skip
            print(f"  {name} x{f:g}: restored z~N(0,1) {noisy.psnr:.2f} / {noisy.ssim:.4f}, z=0 {zero.psnr:.2f} / "
                  f"{zero.ssim:.4f}; LR vs bicubic {zero.lr_psnr:.2f} / {zero.lr_ssim:.4f}", flush=True)  # fmt: skip
    return out


def compare(new: dict, shipped: dict) -> dict:
    """Per protocol: does the new model restore better on every set and factor measured?"""
    verdict = {}
    for key, label in (("psnr", "z ~ N(0, 1) (the papers' protocol, the README's bar)"), ("psnr_z0", "z = 0")):
        deltas = {
            f"{s} {x}": round(new[s][x][key] - shipped[s][x][key], 3)
            for s in new for x in new[s] if s in shipped and x in shipped[s]
        }  # fmt: skip
        verdict[key] = {"protocol": label, "delta_db": deltas, "beats": bool(deltas) and min(deltas.values()) > 0}
        print(f"new - shipped, {label}: " + ", ".join(f"{k} {v:+.2f}" for k, v in deltas.items())
              + f" -> {'beats' if verdict[key]['beats'] else 'does not beat'} the shipped weights")  # fmt: skip
    lr = [new[s][x]["lr_psnr"] for s in new for x in new[s]]
    verdict["lr_at_least_38db"] = bool(lr) and min(lr) >= 38.0  # the README's bar for the LR against bicubic
    print(f"new LR against MATLAB bicubic: {min(lr, default=float('nan')):.2f} dB at worst (bar 38)")
    return verdict


def shipped_figures(path: Path | None, wait_s: float) -> tuple[dict, str]:
    """The ``shipped`` command's figures (waiting up to ``wait_s`` for them), else the manifest's."""
    end = time.time() + wait_s
    while path and not path.exists() and time.time() < end:
        time.sleep(1)
    if path and path.exists():
        return json.loads(path.read_text())["figures"], f"measured now ({path.name})"
    recorded = manifest()["irn_y"]["figures"]
    return {k: v for k, v in recorded.items() if k in SETS}, "the manifest's (not measured in this run)"


def cmd_shipped(args) -> int:
    args.data = first_images(args.data, args.sets.split(","), args.eval_images)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    print("shipped irn_y:", flush=True)
    result = {"weights": "irn_y (shipped)", "figures": figures(load_model(shipped_path("irn_y")), args.data,
                                                               args.sets.split(","))}  # fmt: skip
    result["seconds"] = round(time.time() - t0, 1)
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.json)  # appears whole: the trainer polls for it
    print(f"shipped figures in {result['seconds']} s", flush=True)
    return 0


def cmd_train(args) -> int:
    device = torch.device(args.device)
    args.eval_data = first_images(args.data, sorted(set(args.sets.split(",")) | {"Set5"}), args.eval_images)
    work = Path(args.work or tempfile.mkdtemp(prefix="irn-gpu-"))
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    planes = training_planes(first_images(args.data, ["T91", "BSD200"], args.max_images), log=lambda *_: None)
    print(f"{len(planes)} training planes in {time.time() - t0:.1f} s; device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}", flush=True)  # fmt: skip
    rate = probe_rate(args, planes, device, work)
    left = args.until - time.time()
    steps = max(PROBE_STEPS, int(rate * (0.9 * left - 2 * args.val_s_estimate)))  # two validation pauses
    if args.max_steps:
        steps = min(steps, args.max_steps)
    print(f"probe: {rate:.2f} steps/s at batch {args.batch}, LR patch {args.lr_patch}; {left:.0f} s left -> "
          f"{steps} steps", flush=True)  # fmt: skip
    cfg = config_for(args, work / "run", steps, device, args.until)
    made: list[PreparedPatches] = []
    stopped, t_train = "", time.time()
    with prepared_patches(planes, args.until, made):
        try:
            ckpt = irn.train(cfg, log=lambda line: print(f"  {line}", flush=True))
        except OutOfTime:
            stopped = "the deadline came first: the last checkpoint counts"
            ckpt = Path(cfg.out_dir) / "checkpoint.safetensors"
    train_s = time.time() - t_train
    if not ckpt.exists():
        print("no checkpoint was written: nothing to measure", flush=True)
        return 1
    model = irn.build_model(cfg)
    info = load_checkpoint(ckpt, model, None)
    done = int(info.get("step", 0))
    print(f"trained {done}/{steps} steps in {train_s:.0f} s{'; ' + stopped if stopped else ''}", flush=True)
    shutil.copyfile(ckpt, args.out / "irn_checkpoint.safetensors")
    sha = save_model(model, args.out / "irn_y_gpu.safetensors")
    history = Path(cfg.out_dir) / "history.jsonl"
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "date": time.strftime("%Y-%m-%d %H:%M"), "torch": torch.__version__,
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("out_dir",)},
        "steps_done": done, "steps_planned": steps, "probe_steps_per_s": round(rate, 3),
        "train_seconds": round(train_s, 1), "stopped": stopped or None, "weights_sha256": sha,
        "validation": [json.loads(line) for line in history.read_text().splitlines()] if history.exists() else [],
        "figures": {},
    }  # fmt: skip
    save = lambda: (args.out / "irn_figures.json").write_text(json.dumps(result, indent=1))  # noqa: E731
    save()  # a timeout during the figures still leaves what training did
    torch.set_num_threads(args.eval_threads or os.cpu_count() or 1)
    print("new weights:", flush=True)
    for name in args.sets.split(","):
        result["figures"].update(figures(model, args.eval_data, [name]))
        save()
    shipped, source = shipped_figures(args.shipped_json, args.shipped_wait)
    result["shipped"] = {"source": source, "figures": shipped}
    result["verdict"] = compare(result["figures"], shipped)
    save()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("shipped", "train"):
        p = sub.add_parser(name)
        p.add_argument("--data", type=Path, default=ROOT / ".gpu_data", help="holds T91, BSD200, Set5, Set14")
        p.add_argument("--sets", default=",".join(SETS), help="validation folders measured at the end")
        p.add_argument("--threads", type=int, default=0)
        p.add_argument("--eval-images", type=int, default=0, help="measure on the first N images of each set")
    sub.choices["shipped"].add_argument("--json", type=Path, required=True)
    t = sub.choices["train"]
    t.add_argument("--out", type=Path, required=True, help="the three result files land here")
    t.add_argument("--until", type=float, required=True, help="deadline for training, as time.time()")
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr-patch", type=int, default=32)
    t.add_argument("--max-steps", type=int, default=0, help="cap on the steps (0: as many as fit)")
    t.add_argument("--max-images", type=int, default=0, help="train on the first N images of each folder")
    t.add_argument("--init-from", default=None, help="weights to start from (default: from scratch)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-threads", type=int, default=0, help="CPU threads for the final figures (0: all)")
    t.add_argument("--val-s-estimate", type=int, default=5, help="seconds one validation takes (budgeted twice)")
    t.add_argument("--shipped-json", type=Path, default=None)
    t.add_argument("--shipped-wait", type=float, default=60.0)
    t.add_argument("--work", default=None, help="run folder (checkpoints); default a temporary one")
    args = ap.parse_args()
    return cmd_shipped(args) if args.cmd == "shipped" else cmd_train(args)


if __name__ == "__main__":
    sys.exit(main())
