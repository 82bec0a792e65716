"""Content-aware delivery on the bundled clip at x2: what the package gains, what it costs in bytes
and in server time, and what a weight swap costs the client.

For each LR CRF, two packages are made with ``vsr_pipe.delivery.server.deliver`` (LR by irn's
learned downscale, and by bicubic), and the master is also encoded directly at full size. Rows:

  (a) LR + weights: the package restored (generic restorer + the chunk's correction), bytes = LR + weights
  (b) irn LR + generic: the same LR restored by irn's inverse alone, bytes = LR
  (c) the master encoded directly at full size with the same codec and preset
  (d) bicubic LR + generic ESPCN, bytes = LR

Y-PSNR is per frame, 8-bit, whole frame, mean over frames, against the decoded master. (a), (b) and
(d) are measured on the decoded LR in fp32 by the server (``report.json``; the client's pipeline
gives the same figure within 0.1 dB: tests/integration/test_delivery_roundtrip.py). The saving of
(a) over (c) is read off (c)'s curve at (a)'s PSNR (log-linear between CRFs). ``--refine N`` adds
an irn package whose LR is tuned to its inverse first (HCD), on the first ``--refine-frames`` frames.
Then one package is restored through the pipeline and its swaps are timed.

  python bench/delivery.py                # about 40 minutes on 2 shared CPU cores
  python bench/delivery.py --short        # the script itself, in a few minutes
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, SAMPLE, bench_parser  # noqa: E402


def main() -> None:
    ap = bench_parser(__doc__, data=False)
    ap.add_argument("--input", default=str(SAMPLE))
    ap.add_argument("--frames", type=int, default=0, help="first N frames only (0: all)")
    ap.add_argument("--crfs", default="18,23,28", help="LR CRFs")
    ap.add_argument("--direct-crfs", default="23,28,33,38,43,48", help="CRFs of the master encoded directly")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps per chunk")
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--max-seconds", type=float, default=5.0)
    ap.add_argument("--chunks", type=int, default=0, help="at most this many chunks (0: by content only)")
    ap.add_argument("--downs", default="irn,bicubic", help="the LR kinds to package")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per fit (0: its default)")
    ap.add_argument("--refine", type=int, default=0, help="also an irn package with the LR refined in N steps")
    ap.add_argument("--refine-frames", type=int, default=24)
    ap.add_argument("--out", default=str(ROOT / "runs" / "delivery"))
    ap.add_argument("--short", action="store_true", help="24 frames, one CRF, 20 steps of a small correction")
    ap.add_argument(
        "--only",
        choices=["refine", "swap", "direct", "report", "import"],
        help="refine: only the --refine rows; swap: only the swap cost of --package; "
        "import: a package made by `vsr-pipe deliver` (--package, its --downs and --crfs) as a row",
    )
    ap.add_argument("--package", help="--only swap: the package to restore")
    args = ap.parse_args()
    if args.only:
        return run_only(args)
    if args.short:
        args.frames, args.crfs, args.direct_crfs, args.steps = 24, "23", "23,28", 20
        args.features, args.blocks, args.refine, args.max_seconds = 8, 1, 0, 0.5
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    master = cut_master(args.input, args.frames, out / "master.mkv") if args.frames else Path(args.input)
    rows: dict = {"input": str(args.input), "frames": args.frames or "all", "packages": [], "direct": []}
    for crf in [float(c) for c in args.crfs.split(",")]:
        for down in args.downs.split(","):
            rows["packages"].append(package_row(master, out, down, crf, args))
            save(out, rows)
    for crf in [float(c) for c in args.direct_crfs.split(",") if c]:
        rows["direct"].append(direct_row(master, out, crf, args.preset))
        save(out, rows)
    if args.refine:
        short = cut_master(args.input, args.refine_frames, out / "master_refine.mkv")
        crf = float(args.crfs.split(",")[len(args.crfs.split(",")) // 2])
        rows["refine"] = [package_row(short, out, "irn", crf, args, refine=r, tag="short") for r in (0, args.refine)]
        save(out, rows)
    several = [r for r in rows["packages"] if r["chunks"] > 1]  # one chunk: nothing to swap
    rows["swap"] = [swap_cost(Path(several[0]["package"]), e) for e in ("onnxruntime", "torch")] if several else []
    save(out, rows)
    print_tables(rows)


def run_only(args) -> None:
    """One part of the bench on its own, into its own figures file."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.only == "swap":
        rows = {"swap": [swap_cost(Path(args.package), engine) for engine in ("onnxruntime", "torch")]}
        (out / "swap.json").write_text(json.dumps(rows, indent=1) + "\n")
        print_swap(rows["swap"])
        return
    if args.only == "report":
        return report(out)
    if args.only == "import":
        row = imported_row(Path(args.package), args.downs, float(args.crfs))
        (out / "figures.json").write_text(json.dumps({"packages": [row]}, indent=1) + "\n")
        return
    if args.only == "direct":
        master = cut_master(args.input, args.frames, out / "master.mkv") if args.frames else Path(args.input)
        rows = {"direct": [direct_row(master, out, float(c), args.preset) for c in args.direct_crfs.split(",")]}
        (out / "direct.json").write_text(json.dumps(rows, indent=1) + "\n")
        return
    short = cut_master(args.input, args.refine_frames, out / "master_refine.mkv")
    crf = float(args.crfs.split(",")[0])
    rows = {"refine": [package_row(short, out, "irn", crf, args, refine=r, tag="short") for r in (0, args.refine)]}
    (out / "refine.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    for r in rows["refine"]:
        print(
            f"refine {r['refine']}: generic {r['generic_psnr']:.2f}, package {r['tuned_psnr']:.2f} dB, {r['lr_bytes']} B LR"
        )


def report(out: Path) -> None:
    """The tables from the figures files under ``out`` (figures, direct, refine, swap, curve), with
    bytes counted as the video stream's packets only (the clip's audio, copied into every file, is
    left out on both sides)."""
    from vsr_pipe.io.keyframes import video_bytes

    rows: dict = {"packages": [], "direct": [], "refine": [], "swap": []}
    for name in ("figures.json", "direct.json", "refine.json", "swap.json"):
        for folder in sorted(out.parent.glob(out.name + "*")):
            path = folder / name
            if path.is_file():
                for key, value in json.loads(path.read_text()).items():
                    if key in rows and isinstance(value, list):
                        rows[key] += value
    for r in rows["packages"] + rows["refine"]:
        r["lr_bytes"] = video_bytes(str(Path(r["package"]) / "lr.mp4"))
    for d in rows["direct"]:
        d["bytes"] = video_bytes(str(next(out.parent.glob(f"{out.name}*/direct_crf{d['crf']:g}.mp4"))))
    rows["packages"].sort(key=lambda r: (r["down"], r["crf"]))
    rows["direct"] = sorted({d["crf"]: d for d in rows["direct"]}.values(), key=lambda d: d["crf"])
    (out / "report.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    print_tables(rows)


def cut_master(src: str, frames: int, dst: Path) -> Path:
    """The first ``frames`` frames of ``src``, losslessly (FFV1), timestamps kept."""
    import av

    with av.open(src) as inp, av.open(str(dst), "w") as outp:
        vin = inp.streams.video[0]
        vout = outp.add_stream("ffv1", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.time_base = vin.time_base
        for n, frame in enumerate(inp.decode(vin)):
            if n == frames:
                break
            frame.pict_type = av.video.frame.PictureType.NONE
            outp.mux(vout.encode(frame))
        outp.mux(vout.encode(None))
    return dst


def package_row(master: Path, out: Path, down: str, crf: float, args, refine: int = 0, tag: str = "") -> dict:
    from vsr_pipe.config import EncodeOptions
    from vsr_pipe.delivery.fit import FitSettings
    from vsr_pipe.delivery.server import DeliverOptions, deliver

    fit = FitSettings(
        steps=args.steps, features=args.features, blocks=args.blocks, learning_rate=args.learning_rate,
        threads=args.threads,
    )  # fmt: skip
    rules = replace(DeliverOptions().rules, cap=args.chunks)
    options = DeliverOptions(
        down=down, encode=EncodeOptions(crf=crf, preset=args.preset), fit=fit, refine=refine,
        max_seconds=args.max_seconds, rules=rules,
    )  # fmt: skip
    name = f"{down}_crf{crf:g}" + (f"_refine{refine}" if refine else "") + (f"_{tag}" if tag else "")
    started = time.perf_counter()

    def progress(done) -> None:
        r = done.result
        g, t = sum(r.generic_psnr) / len(r.generic_psnr), sum(r.tuned_psnr) / len(r.tuned_psnr)
        print(f"  {name} chunk {r.index}: {r.steps} steps {r.seconds:.0f} s, {g:.2f} -> {t:.2f} dB", file=sys.stderr)

    s = deliver(str(master), str(out / name), options, on_chunk=progress)
    row = {
        "package": str(out / name), "down": down, "crf": crf, "refine": refine, "chunks": s.chunks,
        "frames": s.frames, "generic_psnr": s.generic_psnr, "tuned_psnr": s.tuned_psnr, "gain_db": s.gain_db,
        "lr_bytes": s.lr_bytes, "weights_bytes": s.weights_bytes, "server_seconds": s.seconds,
        "server_s_per_minute": s.server_s_per_minute, "wall_s": time.perf_counter() - started,
    }  # fmt: skip
    print(
        f"{name}: generic {s.generic_psnr:.2f} dB, package {s.tuned_psnr:.2f} dB ({s.gain_db:+.2f}); "
        f"LR {s.lr_bytes} B + weights {s.weights_bytes} B",
        file=sys.stderr,
    )
    return row


def imported_row(package: Path, down: str, crf: float) -> dict:
    """The row of a package made elsewhere (the command line), from its report."""
    report = json.loads((package / "report.json").read_text())
    q, cost = report["quality"], report["cost"]
    return {
        "package": str(package), "down": down, "crf": crf, "refine": 0, "chunks": len(report["chunks"]),
        "frames": sum(c["frames"] for c in report["chunks"]), "generic_psnr": q["generic_psnr"],
        "tuned_psnr": q["tuned_psnr"], "gain_db": q["gain_db"], "lr_bytes": q["lr_bytes"],
        "weights_bytes": q["weights_bytes"], "server_seconds": cost["seconds"],
        "server_s_per_minute": cost["seconds_per_minute_of_video"],
    }  # fmt: skip


def direct_row(master: Path, out: Path, crf: float, preset: str) -> dict:
    import vsr_pipe
    from vsr_pipe.quality.video import compare_videos

    dst = out / f"direct_crf{crf:g}.mp4"
    vsr_pipe.upscale(
        str(master), str(dst), scale=1, model="bicubic", encode=vsr_pipe.EncodeOptions(crf=crf, preset=preset)
    )
    scores = compare_videos(str(master), str(dst), with_ssim=False)
    print(f"direct crf {crf:g}: {scores.mean_psnr:.2f} dB, {dst.stat().st_size} B", file=sys.stderr)
    return {"crf": crf, "bytes": dst.stat().st_size, "psnr": scores.mean_psnr}


class NullSink:
    """Takes the frames and keeps none: the run's own time, with no encoder."""

    frames_written = 0

    def write(self, planes, pts) -> None:
        self.frames_written += 1

    def copy(self, packet) -> None:
        pass


def swap_cost(package: Path, engine: str) -> dict:
    """Restore ``package`` through the pipeline; time its weight swaps against the chunks' time."""
    import tempfile

    from vsr_pipe.delivery.client import open_package, restore_pipeline
    from vsr_pipe.pipeline.run import drive, prepare

    with tempfile.TemporaryDirectory() as work:
        pkg = open_package(str(package), Path(work))
        options = replace(restore_pipeline(pkg), engine=engine)
        started = time.perf_counter()
        opened = prepare(str(pkg.video), options)
        build = time.perf_counter() - started
        generic = prepare(str(pkg.video), replace(options, weights=None))
        build_generic = time.perf_counter() - started - build
        generic.close()
        with opened.source:
            summary = drive(opened, NullSink())
        seconds, frames = summary.seconds, summary.frames
        stages = opened.run.stages
    per_chunk = seconds / len(pkg.chunks)
    swap_ms = 1000 * stages.swap_seconds / max(stages.swaps, 1)
    return {
        "engine": opened.engine, "frames": frames, "chunks": len(pkg.chunks), "swaps": stages.swaps,
        "swap_ms_mean": swap_ms, "run_seconds": seconds, "chunk_seconds_mean": per_chunk,
        "swap_share_of_chunk": swap_ms / 1000 / per_chunk, "prepare_seconds": build - build_generic,
    }  # fmt: skip


def saving_over_direct(row: dict, direct: list[dict]) -> float | None:
    """1 - package bytes / direct bytes at the package's PSNR (log-bytes linear in PSNR between
    direct CRFs); None outside the direct curve."""
    pts = sorted((d["psnr"], math.log(d["bytes"])) for d in direct)
    p = row["tuned_psnr"]
    for (p0, b0), (p1, b1) in zip(pts, pts[1:]):
        if p0 <= p <= p1:
            direct_bytes = math.exp(b0 + (b1 - b0) * (p - p0) / (p1 - p0 or 1))
            return 1 - (row["lr_bytes"] + row["weights_bytes"]) / direct_bytes
    return None


def save(out: Path, rows: dict) -> None:
    (out / "figures.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")


def print_tables(rows: dict) -> None:
    print("| LR CRF | down | (b)/(d) generic: kB, dB | (a) package: kB (of which weights), dB | gain | saving vs (c) |")
    print("|---|---|---|---|---|---|")
    for r in rows["packages"]:
        saving = saving_over_direct(r, rows["direct"])
        total = (r["lr_bytes"] + r["weights_bytes"]) / 1000
        print(
            f"| {r['crf']:g} | {r['down']} | {r['lr_bytes'] / 1000:.1f}, {r['generic_psnr']:.2f} | "
            f"{total:.1f} ({r['weights_bytes'] / 1000:.1f}), {r['tuned_psnr']:.2f} | {r['gain_db']:+.2f} | "
            f"{'outside (c)' if saving is None else f'{100 * saving:+.0f}%'} |"
        )
    print("\n| (c) direct CRF | kB | dB |\n|---|---|---|")
    for d in rows["direct"]:
        print(f"| {d['crf']:g} | {d['bytes'] / 1000:.1f} | {d['psnr']:.2f} |")
    for r in rows.get("refine", []):
        print(
            f"refine {r['refine']}: generic {r['generic_psnr']:.2f}, package {r['tuned_psnr']:.2f} dB, {r['lr_bytes']} B LR"
        )
    print("\nserver seconds per minute of video, per stage:")
    for r in rows["packages"]:
        costs = ", ".join(f"{k} {v:.0f}" for k, v in r["server_s_per_minute"].items())
        print(f"  {r['down']} crf {r['crf']:g}: {costs}")
    print_swap(rows.get("swap", []))


def print_swap(rows: list[dict]) -> None:
    for s in rows:
        print(
            f"swap ({s['engine']}): {s['swaps']} swaps, {s['swap_ms_mean']:.2f} ms each, "
            f"{100 * s['swap_share_of_chunk']:.3f}% of a chunk's {s['chunk_seconds_mean']:.2f} s; "
            f"weights prepared ahead in {s['prepare_seconds']:.2f} s"
        )


if __name__ == "__main__":
    main()
