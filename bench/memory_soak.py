"""Memory over a long stream: an hour of 320x180 video, generated and piped in, never stored.

    python bench/memory_soak.py                       # 3600 s of video at 25 fps (90 000 frames)
    python bench/memory_soak.py --seconds 120 --out /tmp/soak   # a short one

A generator process writes Matroska (H.264 ultrafast + FLAC audio) to a pipe; ``vsr-pipe - --model
bicubic -f matroska -o -`` reads it and writes x2 (libx264 ultrafast) to a pipe this script reads and
discards. The vsr-pipe process's RSS is sampled every ``--every`` seconds against the video generated
so far (within the few chunks in flight). The growth after warm-up (the first 10% of the video) is
fitted by least squares, in MiB per hour of video, and charted; a partial report is written every
30 samples, so a run cut short still says what it saw.

Writes ``soak.json`` (samples, slope, growth) and ``soak.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GENERATOR = r"""
import sys, av, numpy as np
from fractions import Fraction
seconds, fps, w, h = float(sys.argv[1]), int(sys.argv[2]), 320, 180
count_path = sys.argv[3]
out = av.open(sys.stdout.buffer, "w", format="matroska")
codec = sys.argv[4]
s = out.add_stream(codec, rate=fps, options={"preset": "ultrafast", "crf": "23", "g": "50"} if codec == "libx264" else {})
s.width, s.height, s.pix_fmt = w, h, "yuv420p"
audio = out.add_stream("flac", rate=48000)
audio.codec_context.layout = "mono"
yy, xx = np.mgrid[0:h, 0:w]
cycle = []
for k in range(50):  # 2 s of moving content, repeated: cheap to make, never a still picture
    y = ((xx * 2 + yy + k * 5) % 256).astype(np.uint8)
    u = np.full((h // 2, w // 2), 128 + (k % 16), np.uint8)
    v = np.full((h // 2, w // 2), 128 - (k % 16), np.uint8)
    cycle.append((y, u, v))
tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(1920) / 48000)).astype(np.float32)
tone16 = (tone * 32767).astype(np.int16)[None, :]
n = int(seconds * fps)
with open(count_path, "w") as counter:
    for i in range(n):
        frame = av.VideoFrame(w, h, "yuv420p")
        for plane, data in zip(frame.planes, cycle[i % 50]):
            view = np.frombuffer(plane, np.uint8).reshape(plane.height, -1)
            view[:, : data.shape[1]] = data
        frame.pts, frame.time_base = i, Fraction(1, fps)
        out.mux(s.encode(frame))
        a = av.AudioFrame.from_ndarray(tone16, format="s16", layout="mono")
        a.sample_rate, a.pts, a.time_base = 48000, i * 1920, Fraction(1, 48000)
        out.mux(audio.encode(a))
        if i % fps == 0:
            counter.seek(0); counter.write(f"{i:12d}"); counter.flush()
    out.mux(s.encode(None)); out.mux(audio.encode(None))
    counter.seek(0); counter.write(f"{n:12d}"); counter.flush()
out.close()
"""


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    except (OSError, StopIteration):
        return None


def drain(stream, total: list) -> None:
    while chunk := stream.read(1 << 20):
        total[0] += len(chunk)


def fit(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs) or 1.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def chart(samples: list[dict], warm: int, path: Path, title: str) -> None:
    from PIL import Image, ImageDraw

    width, height, left, right, top, bottom = 900, 340, 70, 880, 40, 300
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    d.text((left, 10), title, fill="black")
    xs = [s["video_s"] / 60 for s in samples]
    ys = [s["rss_kb"] / 1024 for s in samples]
    lo, hi = min(ys) - 5, max(ys) + 5
    x_hi = max(xs) or 1
    d.rectangle([left, top, right, bottom], outline="black")
    for k in range(6):
        mib = lo + k * (hi - lo) / 5
        y = bottom - (mib - lo) / (hi - lo) * (bottom - top)
        d.line([left, y, right, y], fill=(225, 225, 225))
        d.text((8, y - 6), f"{mib:.0f} MiB", fill="black")
    pts = [(left + x / x_hi * (right - left), bottom - (y - lo) / (hi - lo) * (bottom - top)) for x, y in zip(xs, ys)]
    if len(pts) > 1:
        d.line(pts, fill=(200, 40, 40), width=2)
    wx = left + warm / 60 / x_hi * (right - left)
    d.line([wx, top, wx, bottom], fill=(40, 90, 200))
    d.text((wx + 4, top + 4), "warm-up ends", fill=(40, 90, 200))
    d.text((left, bottom + 10), "0 min of video", fill="black")
    d.text((right - 110, bottom + 10), f"{x_hi:.0f} min of video", fill="black")
    img.save(path)


def report(samples: list[dict], args, argv, started: float, code: int | None, stderr: str, out: Path) -> dict:
    """Slope and growth after warm-up (the first 10% of the video), written as soak.json and soak.png."""
    done = samples[-1]["video_s"] if samples else 0.0
    warm = 0.1 * (args.seconds if code is not None else done)
    after = [s for s in samples if s["video_s"] >= warm]
    slope = fit([s["video_s"] / 3600 for s in after], [s["rss_kb"] / 1024 for s in after]) if len(after) > 2 else 0.0
    tail = [s["rss_kb"] for s in after[-max(1, len(after) // 10) :]]
    head = [s["rss_kb"] for s in after[: max(1, len(after) // 10)]]
    result = {
        "command": " ".join(["python", "bench/memory_soak.py", *(argv if argv is not None else sys.argv[1:])]),
        "video_seconds": args.seconds,
        "video_seconds_done": done,
        "finished": code is not None,
        "frames": int(done * args.fps),
        "wall_seconds": round(time.monotonic() - started, 1),
        "exit_code": code,
        "stderr_tail": stderr.strip()[-500:],
        "rss_warm_mib": round(sorted(head)[len(head) // 2] / 1024, 1) if head else None,
        "rss_end_mib": round(sorted(tail)[len(tail) // 2] / 1024, 1) if tail else None,
        "rss_peak_mib": round(max(s["rss_kb"] for s in samples) / 1024, 1) if samples else None,
        "slope_mib_per_hour": round(slope, 2),
        "samples": samples,
    }
    result["growth_mib"] = round(result["rss_end_mib"] - result["rss_warm_mib"], 1) if head and tail else None
    (out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    if samples:
        chart(samples, warm, out / "soak.png",
              f"vsr-pipe RSS, {done / 60:.0f} min of 320x180 video piped through x2 bicubic: "
              f"{result['slope_mib_per_hour']:+.2f} MiB/h after warm-up")  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3600.0, help="video length (25 fps)")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--every", type=float, default=2.0, help="seconds between RSS samples")
    ap.add_argument("--codec", default="libx264", help="video codec in and out: libx264 (ultrafast) or rawvideo")
    ap.add_argument("--out", default="runs/memory_soak")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counter = out / "generated.txt"
    counter.write_text("0")
    gen = subprocess.Popen(
        [sys.executable, "-c", GENERATOR, str(args.seconds), str(args.fps), str(counter), args.codec],
        stdout=subprocess.PIPE,
    )
    preset = ["--preset", "ultrafast"] if args.codec == "libx264" else []
    cmd = [sys.executable, "-m", "vsr_pipe", "-", "--model", "bicubic", "--codec", args.codec, *preset,
           "-f", "matroska", "-o", "-", "-q", "--json"]  # fmt: skip
    vsr = subprocess.Popen(cmd, stdin=gen.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    gen.stdout.close()
    written = [0]
    reader = threading.Thread(target=drain, args=(vsr.stdout, written), daemon=True)
    reader.start()
    samples, started = [], time.monotonic()
    while vsr.poll() is None:
        rss = rss_kb(vsr.pid)
        try:
            made = int(counter.read_text().strip() or 0)
        except (OSError, ValueError):
            made = 0
        if rss is not None:
            samples.append({"t": round(time.monotonic() - started, 1), "video_s": made / args.fps, "rss_kb": rss,
                            "out_bytes": written[0]})  # fmt: skip
            if len(samples) % 30 == 0:  # a partial report, in case the run is cut short
                report(samples, args, argv, started, None, "", out)
        time.sleep(args.every)
    reader.join(timeout=10)
    stderr = vsr.stderr.read().decode(errors="replace")
    gen.wait()
    result = report(samples, args, argv, started, vsr.returncode, stderr, out)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
    return 0 if vsr.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
