"""Scale-out on this machine: batch and time-split throughput against one process, on local worker
processes and on a local Ray, and Ray's overhead per task.

    python bench/scale_out.py [--files 4] [--frames 250] [--workers 2] [--model espcn] [--no-ray]

Inputs are made from the bundled sample (re-encoded with a keyframe every second, so a file can be
cut; looped to ``--frames``). One process uses all the cores (``--threads 0``); N workers use one
core each. On a 2-core machine the ceiling is about 2x; on a shared machine the figures move with
the neighbours' load (the last column: the 1-minute load average after each run; the cores are
2). So each run's CPU seconds are counted too (this process and all its descendants: pool
workers, Ray's raylet and workers, from /proc): frames per CPU second against one process is what
the scale-out costs in extra work, whatever the load; W free cores then give about W times that.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

import av  # noqa: E402

from bench.common import SAMPLE, bench_parser  # noqa: E402
from vsr_pipe.config import PipelineOptions, Scale  # noqa: E402
from vsr_pipe.jobs.batch import run_batch  # noqa: E402
from vsr_pipe.jobs.placement import per_task_options  # noqa: E402
from vsr_pipe.jobs.split import split_run  # noqa: E402
from vsr_pipe.pipeline.run import run_to_file  # noqa: E402
from vsr_pipe.runners import InProcessRunner, ProcessRunner, RayRunner  # noqa: E402


def make_input(dst: Path, frames: int, gop: int = 25) -> Path:
    """The sample's video looped to ``frames`` frames, x264 with a keyframe every ``gop`` frames,
    its audio kept for the first loop (so the join's stream copy is exercised)."""
    with av.open(str(SAMPLE)) as src:
        pictures = [f.to_ndarray(format="yuv420p") for f in src.decode(video=0)]
        rate = src.streams.video[0].average_rate
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": "20", "g": str(gop), "keyint_min": str(gop)})
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pictures[i % len(pictures)], format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return dst


def cpu_seconds() -> float:
    """CPU time of this process and every live descendant (Ray's raylet and workers, pool workers),
    with what their finished children spent: from /proc, in seconds."""
    parents, times = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    mine, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        mine.add(pid)
        todo += [c for c, p in parents.items() if p == pid and c not in mine]
    return sum(times.get(pid, 0) for pid in mine) / os.sysconf("SC_CLK_TCK")


def timed(fn) -> tuple[float, object]:
    """Wall seconds of ``fn()`` and its result; the CPU seconds it took go to ``timed.cpu``."""
    t, c = time.perf_counter(), cpu_seconds()
    result = fn()
    timed.cpu = cpu_seconds() - c
    return time.perf_counter() - t, result


def noop(x):
    return x


def ray_overhead(runner: RayRunner, tasks: int) -> dict:
    """Seconds per empty task: one at a time (latency: submit, schedule, run, fetch) and many at once
    (throughput), through the runner's own map (its error-catching wrapper included)."""
    ray = runner.connect()
    list(runner.map(noop, list(range(4))))  # workers up
    one, _ = timed(lambda: [list(runner.map(noop, [i])) for i in range(20)])
    many, _ = timed(lambda: list(runner.map(noop, list(range(tasks)))))
    bare = ray.remote(noop)
    raw, _ = timed(lambda: ray.get([bare.remote(i) for i in range(tasks)]))
    return {
        "latency_ms": 1000 * one / 20,
        "per_task_ms_in_flight": 1000 * many / tasks,
        "raw_ray_ms": 1000 * raw / tasks,
    }


def main() -> None:
    ap = bench_parser(__doc__, data=False)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--frames", type=int, default=250, help="frames per input file")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default="espcn")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    options = PipelineOptions(scale=Scale(2, 2), model=args.model)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        first = make_input(folder / "in" / "f0.mp4", args.frames)
        for k in range(1, args.files):
            os.link(first, folder / "in" / f"f{k}.mp4")
        total = args.files * args.frames
        # "1 process" may use every core (its model and encoder threads); "1 thread" is what one
        # worker gets, so the scale-out's ceiling here is N workers against it.
        runners = [
            ("1 process", InProcessRunner()),
            ("1 process, 1 thread", InProcessRunner()),
            (f"{args.workers} local processes", ProcessRunner(args.workers)),
        ]
        if not args.no_ray:
            runners.append((f"Ray, {args.workers} workers", RayRunner("auto", workers=args.workers)))
            ray = runners[-1][1].connect()
            list(runners[-1][1].map(noop, [0, 1]))  # Ray is up before anything is timed

        for name, runner in runners:
            out = folder / f"batch-{len(rows)}"
            opts = per_task_options(options, 1) if name.endswith("1 thread") else options
            seconds, summary = timed(
                lambda out=out, runner=runner, opts=opts: run_batch([str(folder / "in")], out, opts, runner)
            )
            assert summary.ok and summary.frames == total, summary
            rows[f"batch {args.files} files, {name}"] = {
                "seconds": seconds,
                "fps": total / seconds,
                "cpu": timed.cpu,
                "load": os.getloadavg()[0],
            }

        for name, runner in runners:
            dst = folder / f"split-{len(rows)}.mp4"
            if isinstance(runner, InProcessRunner):
                opts = per_task_options(options, 1) if name.endswith("1 thread") else options
                seconds, summary = timed(lambda dst=dst, opts=opts: run_to_file(first, dst, opts))
                parts = 1
            else:
                seconds, summary = timed(
                    lambda dst=dst, runner=runner: split_run(str(first), str(dst), options, "auto", runner)
                )
                parts = summary.parts
            rows[f"one file split, {name}"] = {
                "seconds": seconds,
                "fps": args.frames / seconds,
                "parts": parts,
                "cpu": timed.cpu,
                "load": os.getloadavg()[0],
            }

        if not args.no_ray:
            rows["Ray overhead per empty task"] = ray_overhead(runners[-1][1], 200)
            tiny = make_input(folder / "tiny.mp4", 2, gop=1)
            local, _ = timed(lambda: run_batch([str(tiny)], folder / "tiny-local", options))
            on_ray, _ = timed(lambda: run_batch([str(tiny)], folder / "tiny-ray", options, runners[-1][1]))
            rows["2-frame file: fixed cost of one run"] = {"in process_s": local, "as a Ray task_s": on_ray}
            ray.shutdown()
    print(f"{'run':44s} {'seconds':>8s} {'frames/s':>9s} {'vs 1 proc':>10s} {'vs 1 thread':>12s} {'CPU s':>7s} "
          f"{'frames/CPU s':>13s} {'vs 1 proc':>10s} {'load':>5s}")  # fmt: skip
    for name, row in rows.items():
        if "fps" in row:
            kind = name.split(",")[0]
            base = rows[next(k for k in rows if k.startswith(kind) and k.endswith("1 process"))]
            one = rows[next(k for k in rows if k.startswith(kind) and k.endswith("1 thread"))]
            frames = row["fps"] * row["seconds"]
            per_cpu, base_per_cpu = frames / row["cpu"], base["fps"] * base["seconds"] / base["cpu"]
            extra = f"  ({row['parts']} parts)" if row.get("parts", 1) > 1 else ""
            print(f"{name:44s} {row['seconds']:8.1f} {row['fps']:9.2f} {row['fps'] / base['fps']:9.2f}x "
                  f"{row['fps'] / one['fps']:11.2f}x {row['cpu']:7.1f} "
                  f"{per_cpu:13.2f} {per_cpu / base_per_cpu:9.2f}x {row['load']:5.1f}{extra}")  # fmt: skip
        else:
            print(f"{name:44s} " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
