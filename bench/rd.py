"""Rate–distortion of delivery against coding the master directly (issue #17): the delivery figure.

For each clip, curves of bytes against Y-PSNR (per frame, whole frame, mean, against the master):
  (a) direct: the master coded at full size, x264 and x265, preset medium, several CRFs
  (b) LR + bicubic, (c) LR + the generic ESPCN, (c') LR + the codec-aware restorer (no weights)
      — the LR by MATLAB bicubic at x2 and x3, coded with the same codec and preset
  (d) the ladder `vsr-pipe deliver --ladder` ships: every candidate package (LR + weights + manifest,
      restored through the client) and the rungs it kept (its hull, direct rungs included)
Bytes are what a client fetches for the picture: video packets (no container, audio left out on
every side), plus a package's weights files and manifest. BD-rate (Bjøntegaard, PCHIP) of each
curve against (a) x264, over the PSNR band where direct coding gives 26–36 dB and over the whole
overlap; a chart per clip (runs/rd/CLIP/rd.png) and a table.

The real camera clips are already lossy H.264; as ../shared/data/README.md advises, each is
downscaled x2 first (MATLAB bicubic, every plane) and that is the master (384x216); `--prescale 1`
takes them as they are (768x432, their own coding noise part of the master).

  python bench/rd.py                      # both real clips and the sample, about an hour here
  python bench/rd.py --clips car --frames 120 --steps 60   # a quick look
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, ROOT, SAMPLE, bench_parser  # noqa: E402

# name: (file, prescale, frames by default: 0 all). The person clip's first 30 s (of 139) keeps the run short.
CLIPS = {
    "car": (DATA / "video" / "car-detection.mp4", 2, 0),
    "person": (DATA / "video" / "one-by-one-person-detection.mp4", 2, 300),
    "bunny": (SAMPLE, 1, 0),  # animation: reported on its own (it favours full resolution)
}
BAND = (26.0, 36.0)
LOW_BAND = (26.0, 31.0)  # "the low rates": where direct coding gives 26-31 dB


def main() -> None:
    ap = bench_parser(__doc__)
    ap.add_argument("--clips", default="car,person,bunny")
    ap.add_argument("--frames", type=int, default=0, help="first N frames of each clip (0: the clip's default)")
    ap.add_argument("--prescale", type=int, default=0, help="downscale each master first (0: each clip's own)")
    ap.add_argument("--direct-crfs", default="23,28,33,38,43,48,51")
    ap.add_argument("--lr-crfs", default="23,28,33,38,43")
    ap.add_argument("--ladder-lr-crfs", default="28,33,38,43,48", help="the ladder's LR candidates (x2 and x3)")
    ap.add_argument("--codecs", default="libx264,libx265")
    ap.add_argument("--steps", type=int, default=300, help="the ladder's fit budget per title (chunks get a third)")
    ap.add_argument("--code-grid", type=int, default=0, help="the packages' codes are multiples of it (0: the default)")
    ap.add_argument("--db-per-doubling", type=float, default=0.0, help="the packages' pay rule (0: deliver's default)")
    ap.add_argument("--max-seconds", type=float, default=10.0, help="the packages' longest chunk")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-ladder", action="store_true", help="curves (a)-(c') only")
    ap.add_argument("--out", default=str(ROOT / "runs" / "rd"))
    ap.add_argument("--report", action="store_true", help="tables and charts again from the saved rows")
    args = ap.parse_args()
    if not 0 <= args.prescale <= 8:
        ap.error("--prescale takes 1-8 (0: each clip's default)")
    if not 0 <= args.code_grid <= 64 or args.db_per_doubling < 0:
        ap.error("--code-grid takes 0-64 and --db-per-doubling a positive slope (0: the defaults)")
    table = report(args) if args.report else [row for name in args.clips.split(",") for row in run_clip(name, args)]
    print_table(table)
    print_side_bytes(Path(args.out), args.clips.split(","), args.codecs.split(","))
    (Path(args.out) / "table.json").write_text(json.dumps(table, indent=1) + "\n")


def run_clip(name: str, args) -> list[dict]:
    from vsr_pipe.quality.rd import RdPoint

    src, prescale, frames = CLIPS[name]
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    master, rate = master_frames(src, args.frames or frames, args.prescale or prescale)
    master_path = write_master(master, rate, out / "master.mkv")
    ref = [f[0] for f in master]
    print(f"{name}: master {ref[0].shape[1]}x{ref[0].shape[0]}, {len(ref)} frames", file=sys.stderr)
    rows = []
    for codec in args.codecs.split(","):
        curves: dict[str, list[RdPoint]] = {}
        curves[f"direct {short(codec)}"] = direct_curve(master, ref, codec, floats(args.direct_crfs), rate)
        for factor in (2, 3):
            if ref[0].shape[0] % (2 * factor) or ref[0].shape[1] % (2 * factor):
                continue  # a 4:2:0 LR needs even sizes the factor divides
            curves.update(lr_curves(master, ref, codec, factor, floats(args.lr_crfs), rate))
        hull = None
        if not args.skip_ladder:
            packages, hull = ladder_curve(master_path, out / f"ladder_{short(codec)}", codec, args, ref)
            curves.update(packages)
        rows += tabulate(name, codec, curves, hull, out)
    return rows


def tabulate(name: str, codec: str, curves: dict, hull: list | None, out: Path) -> list[dict]:
    """BD-rates of every curve against direct coding — against the ladder's own direct candidates
    (coded by the same pipeline and settings as its packages: the fair anchor) where there is a
    ladder, and against the in-memory direct curve — a chart, and the rows saved."""
    from vsr_pipe.quality.rd import RdPoint, bd_psnr, bd_rate, convex_hull, rd_chart

    ladder = out / f"ladder_{short(codec)}" / "ladder.json"
    if ladder.is_file():
        found = json.loads(ladder.read_text())["candidates"]
        direct = [RdPoint(c["bytes"], c["psnr"], c["name"]) for c in found if c["kind"] == "direct"]
        curves = {f"direct {short(codec)}, ladder": direct, **curves}
    anchors = {"ladder": curves.get(f"direct {short(codec)}, ladder"), "memory": curves[f"direct {short(codec)}"]}
    rows = []
    low = low_rates(anchors["ladder"] or anchors["memory"])
    for label, points in [*curves.items(), *([("hull (shipped)", hull)] if hull else [])]:
        row = {"clip": name, "codec": codec, "curve": label, "points": [[p.bytes, round(p.psnr, 3), p.label] for p in points]}
        for key, anchor in anchors.items():
            if anchor:
                row[f"bd_rate_band_vs_{key}"] = bd_rate(anchor, points, BAND)
                row[f"bd_rate_all_vs_{key}"] = bd_rate(anchor, points)
        generic = curves.get(label.replace(" package ", " LR+ESPCN (pipeline) "))
        if label == "hull (shipped)":  # against the ladder a server builds without weights
            generic = plain_hull(curves, anchors["ladder"])
        if (" package " in label or label == "hull (shipped)") and generic:  # at equal bytes
            row["bd_psnr_vs_generic_all"] = bd_psnr(generic, points)
            row["bd_psnr_vs_generic_low"] = bd_psnr(generic, points, low)
        rows.append(row)
    rd_chart(curves, out / f"rd_{short(codec)}.png", f"{name}: bytes vs Y-PSNR ({codec}, medium)", BAND,
             hull or convex_hull([p for c in curves.values() for p in c]))  # fmt: skip
    (out / f"rows_{short(codec)}.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def plain_hull(curves: dict, direct: list | None) -> list | None:
    """The hull of the same ladder without weights: its direct candidates and its LR rungs (x2, x3)
    restored by the generic ESPCN, no side bytes — what the shipped hull is measured against."""
    from vsr_pipe.quality.rd import convex_hull

    plain = [p for label, c in curves.items() if " LR+ESPCN (pipeline) " in label for p in c]
    return convex_hull(plain + list(direct or [])) if plain else None


def report(args) -> list[dict]:
    """The tables and charts again from a run's saved rows (``--report``): no encode, no fit."""
    from vsr_pipe.quality.rd import RdPoint

    rows = []
    for name in args.clips.split(","):
        for codec in args.codecs.split(","):
            saved = Path(args.out) / name / f"rows_{short(codec)}.json"
            if not saved.is_file():
                continue
            old = [r for r in json.loads(saved.read_text()) if short(codec) in r["curve"] or r["curve"].startswith("hull")]
            curves = {r["curve"]: [RdPoint(*p) for p in r["points"]] for r in old}
            hull = curves.pop("hull (shipped)", None)
            curves.pop(f"direct {short(codec)}, ladder", None)
            rows += tabulate(name, codec, curves, hull, Path(args.out) / name)
    return rows


def print_side_bytes(out: Path, clips: list[str], codecs: list[str]) -> None:
    """Per package rung the ladder ships: its weights files, its manifest and its video packets, in
    bytes, and the weights' and all side bytes' shares of the video (the issue's bar: weights <= 10 %)."""
    from vsr_pipe.delivery.package import MANIFEST

    print("| clip | codec | rung | weights B | manifest B | video B | weights / video | side / video |")
    print("|---|---|---|---|---|---|---|---|")
    for name in clips:
        for codec in codecs:
            folder = out / name / f"ladder_{short(codec)}"
            if not (folder / "ladder.json").is_file():
                continue
            for rung in json.loads((folder / "ladder.json").read_text())["rungs"]:
                if rung["kind"] != "package":
                    continue
                home = folder / rung["folder"]
                weights = sum(f.stat().st_size for f in home.glob("*.mod"))
                manifest = (home / MANIFEST).stat().st_size
                video = rung["bytes"] - rung["weights_bytes"]
                print(f"| {name} | {short(codec)} | {rung['name']} | {weights} | {manifest} | {video} | "
                      f"{100 * weights / video:.1f} % | {100 * (weights + manifest) / video:.1f} % |")  # fmt: skip


def low_rates(direct: list) -> tuple[float, float] | None:
    """The low rates: the bytes where direct coding gives LOW_BAND dB (log-linear between its points)."""
    pts = sorted((p.psnr, p.bytes) for p in direct)
    if len(pts) < 2:
        return None
    db, size = np.array([p for p, _ in pts]), np.log10([b for _, b in pts])
    return tuple(float(10 ** np.interp(v, db, size)) for v in LOW_BAND)


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def short(codec: str) -> str:
    return codec.removeprefix("lib")


def master_frames(src: Path, frames: int, prescale: int) -> tuple[list, Fraction]:
    """The clip's first ``frames`` frames as (Y, U, V) uint8 planes, downscaled by ``prescale``."""
    import av

    from vsr_pipe.models.matlab_resize import imresize_matrix

    out = []
    with av.open(str(src)) as c:
        stream = c.streams.video[0]
        rate = stream.average_rate or Fraction(25)
        for f in c.decode(stream):
            if frames and len(out) == frames:
                break
            planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in f.planes[:3]]
            if prescale > 1:
                planes = [resize(p, p.shape[0] // prescale, p.shape[1] // prescale, imresize_matrix) for p in planes]
            out.append(tuple(np.ascontiguousarray(p) for p in planes))
    return out, Fraction(rate)


def resize(plane: np.ndarray, h: int, w: int, matrix) -> np.ndarray:
    a, b = matrix(plane.shape[0], h), matrix(plane.shape[1], w)
    return np.clip(np.round(a @ plane.astype(np.float64) @ b.T), 0, 255).astype(np.uint8)


def write_master(master: list, rate: Fraction, dst: Path) -> Path:
    """The master, losslessly (FFV1), for ``deliver`` to read."""
    import av

    h, w = master[0][0].shape
    with av.open(str(dst), "w") as c:
        s = c.add_stream("ffv1", rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i, planes in enumerate(master):
            f = av.VideoFrame(w, h, "yuv420p")
            for dst_plane, p in zip(f.planes, planes):
                np.frombuffer(dst_plane, np.uint8).reshape(dst_plane.height, dst_plane.line_size)[:, : p.shape[1]] = p
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return dst


def y_psnr(outs: list[np.ndarray], ref: list[np.ndarray]) -> float:
    """Mean over frames of the Y-PSNR (8-bit, whole frame)."""
    scores = []
    for o, r in zip(outs, ref):
        mse = np.mean((o.astype(np.float64) - r.astype(np.float64)) ** 2)
        scores.append(99.0 if mse == 0 else 10 * np.log10(255**2 / mse))
    return float(np.mean(scores))


def direct_curve(master, ref, codec: str, crfs: list[float], rate: Fraction) -> list:
    from vsr_pipe.io.codec_roundtrip import code_frames
    from vsr_pipe.quality.rd import RdPoint

    points = []
    for crf in crfs:
        coded = code_frames(master, codec, crf, rate=rate)
        points.append(RdPoint(coded.bytes, y_psnr(coded.luma, ref), f"direct crf {crf:g}"))
        print(f"  direct {codec} crf {crf:g}: {coded.bytes} B {points[-1].psnr:.2f} dB", file=sys.stderr)
    return points


def lr_curves(master, ref, codec: str, factor: int, crfs: list[float], rate: Fraction) -> dict:
    """(b), (c) and (c') at ``factor``: the LR coded at each CRF, restored three ways."""
    from vsr_pipe.io.codec_roundtrip import code_frames
    from vsr_pipe.models.matlab_resize import imresize_matrix
    from vsr_pipe.quality.rd import RdPoint

    lr = [tuple(resize(p, p.shape[0] // factor, p.shape[1] // factor, imresize_matrix) for p in f) for f in master]
    crop = [r[: lr[0][0].shape[0] * factor, : lr[0][0].shape[1] * factor] for r in ref]
    restorers = restorers_for(factor, codec)
    curves: dict[str, list] = {f"x{factor} {n} {short(codec)}": [] for n in restorers}
    for crf in crfs:
        coded = code_frames(lr, codec, crf, rate=rate)
        for n, restore in restorers.items():
            psnr = y_psnr(restore(coded.luma, crop[0].shape), crop)
            curves[f"x{factor} {n} {short(codec)}"].append(RdPoint(coded.bytes, psnr, f"x{factor} crf {crf:g}"))
        print(f"  x{factor} {codec} crf {crf:g}: {coded.bytes} B " + ", ".join(
            f"{n} {c[-1].psnr:.2f}" for n, c in zip(restorers, [curves[f'x{factor} {n} {short(codec)}'] for n in restorers])
        ), file=sys.stderr)  # fmt: skip
    return curves


def restorers_for(factor: int, codec: str) -> dict:
    import torch

    from vsr_pipe.models.matlab_resize import imresize_matrix
    from vsr_pipe.weights.shipped import codec_aware_name
    from vsr_pipe.weights.store import load_model, shipped_path, shipped_sha

    def bicubic(luma, shape):
        return [resize(y, shape[0], shape[1], imresize_matrix) for y in luma]

    def model(name):
        net = load_model(shipped_path(name)).eval()

        def run(luma, shape):
            with torch.no_grad():
                x = torch.from_numpy(np.stack(luma)).unsqueeze(1).float() / 255
                y = torch.cat([net(part) for part in x.split(8)])
            return list(np.clip(np.round(y[:, 0].numpy() * 255), 0, 255).astype(np.uint8))

        return run

    out = {"bicubic": bicubic, "espcn": model(f"espcn_y_x{factor}")}
    if shipped_sha(codec_aware_name(factor, codec)):  # the ladder's start for this codec
        out["codec-aware"] = model(codec_aware_name(factor, codec))
    return out


def ladder_curve(master_path: Path, out: Path, codec: str, args, ref) -> tuple[dict, list]:
    """Every package candidate of ``deliver --ladder`` restored through the client and measured
    here, and the rungs the ladder kept (packages at the PSNR measured here, direct at the ladder's)."""
    from vsr_pipe.delivery.ladder import LadderOptions, build_ladder, restore_rung
    from vsr_pipe.io.keyframes import luma_frames
    from vsr_pipe.quality.rd import RdPoint

    started = time.perf_counter()
    options = LadderOptions(  # what `deliver --ladder` does by default, at these rates and fit budget
        codec=codec, direct_crfs=tuple(floats(args.direct_crfs)), lr_crfs=tuple(floats(args.ladder_lr_crfs)),
        fit=ladder_fit(args), max_seconds=args.max_seconds, threads=args.threads,
        deliver_options=(lambda o, f, c: replace(o, db_per_doubling=args.db_per_doubling)) if args.db_per_doubling else None,
    )  # fmt: skip
    ladder = build_ladder(str(master_path), str(out), options, on_progress=lambda d: print(
        f"  [{d.done}/{d.total}] {d.name}: {d.candidate.bytes} B, {d.candidate.psnr:.2f} dB", file=sys.stderr))
    measured = {}
    for rung in ladder.rungs:
        if rung.kind == "direct":
            measured[rung.name] = RdPoint(rung.bytes, rung.psnr, rung.name)
            continue
        dst = out.parent / f"restored_{short(codec)}_{rung.name}.mkv"
        restore_rung(ladder, rung, str(dst))
        measured[rung.name] = RdPoint(rung.bytes, y_psnr([y for y, _ in luma_frames(str(dst))], ref), rung.name)
        dst.unlink()
    packages: dict[str, list] = {}  # one curve per factor
    for c in ladder.candidates:
        if c.kind == "package":
            packages.setdefault(f"x{c.factor} package {short(codec)}", []).append(RdPoint(c.bytes, c.psnr, c.name))
            # the same pipeline-coded LR, restored by the generic ESPCN alone: its video bytes only
            generic = RdPoint(c.bytes - c.weights_bytes, c.generic_psnr, c.name)
            packages.setdefault(f"x{c.factor} LR+ESPCN (pipeline) {short(codec)}", []).append(generic)
    hull = [measured[r.name] for r in ladder.rungs]
    print(f"  ladder {codec}: {len(ladder.candidates)} candidates, {len(hull)} rungs, "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)  # fmt: skip
    return packages, hull


def ladder_fit(args):
    from vsr_pipe.delivery.fit import FitSettings

    grid = {"code_grid": args.code_grid} if args.code_grid else {}
    return FitSettings(steps=args.steps, threads=args.threads, train="modulation", **grid)


def print_table(rows: list[dict]) -> None:
    def pct(value) -> str:
        return "–" if value is None else f"{value:+.1f}%"

    def db(value) -> str:
        return "–" if value is None else f"{value:+.2f} dB"

    print("| clip | codec | curve | BD-rate vs direct (ladder), 26–36 dB | whole overlap | vs direct (in memory), 26–36 dB "
          "| package (hull: the ladder) vs its LR + ESPCN (hull: the ladder without weights) at equal bytes: "
          "low rates / all |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clip']} | {short(r['codec'])} | {r['curve']} | {pct(r.get('bd_rate_band_vs_ladder'))} | "
              f"{pct(r.get('bd_rate_all_vs_ladder'))} | {pct(r.get('bd_rate_band_vs_memory'))} | "
              f"{db(r.get('bd_psnr_vs_generic_low'))} / {db(r.get('bd_psnr_vs_generic_all'))} |")  # fmt: skip


if __name__ == "__main__":
    main()
