"""Memory of ``deliver`` over a long master: a synthetic 1080p title, packaged with a tiny fit budget,
the process's RSS sampled all along.

The master (``--minutes`` of 1920x1080 video at ``--fps``, moving patterns with a scene change every
20 s, H.264 ultrafast) is made once per length and kept under ``--out``. ``deliver`` (bicubic LR at
``--scale`` 0.25, ``FitSettings(steps=2, features=8, blocks=1)``, chunks of ``--max-seconds``) then runs in this
process while a thread reads VmRSS from /proc/self/status every 0.2 s, and the heap glibc has handed
out and not had back (``mallinfo2``: uordblks + hblkhd). RSS also counts the free pages glibc keeps in
its arenas for reuse (with several threads allocating, hundreds of MB that ``malloc_trim`` would
return); the heap in use is what the process holds. Printed: RSS before deliver, its peak, RSS and
heap in use after each tenth of the chunks, the growth per minute of video, and how long deliver
took to report anything (its first stage line, or else its first finished chunk). Written:
``memory_MIN.json`` and ``memory_MIN.png`` (both over time) under ``--out``.

A server that held the title would peak in proportion to the minutes; one that reads chunk by chunk
peaks at the same height for 2 minutes as for 10.

    python bench/deliver_memory.py                 # 10 minutes at 2 fps: about 20 minutes on 2 shared cores
    python bench/deliver_memory.py --minutes 2
"""

from __future__ import annotations

import ctypes
import inspect
import json
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, bench_parser  # noqa: E402

WIDTH, HEIGHT = 1920, 1080
SCENE_SECONDS = 20


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def heap_mib() -> float:
    """Bytes glibc's malloc has handed out and not had back, over all arenas (0 without glibc 2.33+)."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return 0.0
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20


class RssSampler:
    """VmRSS and the heap in use every ``every`` seconds, in a thread: (seconds since start, RSS MiB,
    heap MiB)."""

    def __init__(self, every: float = 0.2):
        self.every, self.samples, self.started = every, [], time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self.started, rss_mib(), heap_mib()))
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        return max(m for _, m, _ in self.samples)

    @property
    def peak_heap(self) -> float:
        return max(h for _, _, h in self.samples)


def make_master(path: Path, minutes: float, fps: int) -> Path:
    """``minutes`` of 1080p yuv420p H.264 (ultrafast) at ``fps``: a pattern that moves every frame and
    changes every ``SCENE_SECONDS``. Made a frame at a time (nothing held), once per length."""
    import av
    import numpy as np

    if path.is_file():
        return path
    partial = path.with_name(path.name + ".partial.mp4")
    n = int(round(minutes * 60 * fps))
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.int32)
    with av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "20"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(n):
            scene, k = divmod(i, SCENE_SECONDS * fps)
            slope = 1 + scene % 5  # each scene its own stripes, moving
            y = ((xx * slope + yy * (scene % 3) + k * 7 * slope) % 220 + 16).astype(np.uint8)
            y[(yy // 60 + xx // 60 + k) % 4 == 0] //= 2  # a moving checker, for texture the fit can learn
            frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            for plane, value in zip(frame.planes, (y, 128 + scene % 20, 128 - scene % 20)):
                view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                if isinstance(value, int):
                    view[:] = value
                else:
                    view[:, :WIDTH] = value
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    partial.rename(path)
    return path


def chart(samples: list, marks: list, path: Path, title: str) -> None:
    """RSS and heap in use (MiB) over seconds, with a tick where each tenth of the chunks ended."""
    from PIL import Image, ImageDraw

    width, height, left, right, top, bottom = 900, 340, 70, 880, 40, 300
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    d.text((left, 10), title, fill="black")
    xs, ys = [t for t, _, _ in samples], [m for _, m, _ in samples]
    lo, hi = 0.0, max(ys) * 1.1 + 1
    x_hi = max(xs) or 1.0

    def at(t: float, m: float) -> tuple[float, float]:
        return left + t / x_hi * (right - left), bottom - (m - lo) / (hi - lo) * (bottom - top)

    d.rectangle([left, top, right, bottom], outline="black")
    for k in range(6):
        mib = lo + k * (hi - lo) / 5
        y = at(0, mib)[1]
        d.line([left, y, right, y], fill=(225, 225, 225))
        d.text((8, y - 6), f"{mib:.0f} MiB", fill="black")
    if len(samples) > 1:
        d.line([at(t, m) for t, m, _ in samples], fill=(200, 40, 40), width=2)
        d.line([at(t, h) for t, _, h in samples], fill=(90, 90, 90), width=1)
    d.text((right - 230, top + 4), "red: RSS; grey: heap in use", fill="black")
    for t, *_ in marks:
        x = at(t, 0)[0]
        d.line([x, bottom - 6, x, bottom], fill=(40, 90, 200), width=2)
    d.text((left, bottom + 10), "0 s", fill="black")
    d.text((right - 60, bottom + 10), f"{x_hi:.0f} s", fill="black")
    d.text((left + 200, bottom + 10), "blue ticks: each tenth of the chunks done", fill=(40, 90, 200))
    img.save(path)


def main() -> None:
    ap = bench_parser(__doc__, data=False)
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic master")
    ap.add_argument("--fps", type=int, default=2, help="its frame rate")
    ap.add_argument(
        "--scale", default="0.25", help="LR size over the master's (0.25: the generic x4 restorer, cheapest per frame)"
    )
    ap.add_argument("--max-seconds", type=float, default=5.0, help="longest chunk")
    ap.add_argument("--steps", type=int, default=2, help="Adam steps per chunk")
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="fit in this many local processes (1: here)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "deliver_memory"))
    args = ap.parse_args()

    from vsr_pipe.delivery.fit import FitSettings
    from vsr_pipe.delivery.server import DeliverOptions, deliver
    from vsr_pipe.jobs.runners import make_runner

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    master = make_master(out / f"master_{args.minutes:g}min_{args.fps}fps.mp4", args.minutes, args.fps)
    print(f"master: {master} ({master.stat().st_size / 1e6:.0f} MB, made or found in {time.perf_counter() - t:.0f} s)")
    fit = FitSettings(steps=args.steps, features=args.features, blocks=args.blocks)
    options = DeliverOptions(scale=float(Fraction(args.scale)), down="bicubic", max_seconds=args.max_seconds, fit=fit)
    marks: list[tuple[float, float, float]] = []  # (seconds, RSS MiB, heap MiB) as each tenth of the chunks ended
    first: list[tuple[float, str]] = []

    with RssSampler() as rss:
        start_mib = rss_mib()

        def on_chunk(done) -> None:
            if not first:
                first.append((time.perf_counter() - rss.started, f"chunk {done.result.index} done"))
            if done.done * 10 // done.total > (done.done - 1) * 10 // done.total:
                t, mib, heap = time.perf_counter() - rss.started, rss_mib(), heap_mib()
                marks.append((t, mib, heap))
                print(
                    f"  {done.done:4d}/{done.total} chunks: RSS {mib:7.0f} MiB, heap in use {heap:7.0f} MiB", flush=True
                )

        def on_stage(name: str, done: int, total: int) -> None:
            if not first:
                first.append((time.perf_counter() - rss.started, f"stage {name}"))
            if done == 0:
                print(f"  {time.perf_counter() - rss.started:6.1f} s: {name} starts", flush=True)

        kw = {"on_stage": on_stage} if "on_stage" in inspect.signature(deliver).parameters else {}
        runner = make_runner(workers=args.workers) if args.workers > 1 else None
        summary = deliver(str(master), str(out / f"title_{args.minutes:g}min"), options, runner, on_chunk, **kw)
        wall = time.perf_counter() - rss.started
    peak = rss.peak
    result = {
        "vsr_pipe": str(Path(inspect.getfile(deliver)).parents[2]),
        "minutes": args.minutes,
        "fps": args.fps,
        "frames": summary.frames,
        "chunks": summary.chunks,
        "workers": args.workers,
        "wall_s": round(wall, 1),
        "stage_s": {k: round(v, 1) for k, v in summary.seconds.items()},
        "first_report_s": round(first[0][0], 2) if first else None,
        "first_report": first[0][1] if first else None,
        "rss_start_mib": round(start_mib),
        "rss_peak_mib": round(peak),
        "growth_mib_per_minute_of_video": round((peak - start_mib) / args.minutes, 1),
        "rss_after_each_tenth_mib": [round(m) for _, m, _ in marks],
        "heap_peak_mib": round(rss.peak_heap),
        "heap_after_each_tenth_mib": [round(h) for _, _, h in marks],
    }
    name = f"memory_{args.minutes:g}min"
    (out / f"{name}.json").write_text(json.dumps({**result, "samples": rss.samples}) + "\n")
    chart(rss.samples, marks, out / f"{name}.png",
          f"deliver, {args.minutes:g} min of 1080p at {args.fps} fps ({summary.chunks} chunks): "
          f"RSS peak {peak:.0f} MiB from {start_mib:.0f}")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
