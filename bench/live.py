"""The live filter on this machine: sustained fps and added latency, the largest input that keeps
30 fps, the path mix under overload, and FFmpeg's own chain as the anchor.

    python bench/live.py [--seconds 8] [--json runs/live.json] [--no-ffmpeg]

1. The sample clip (640x360, x2) paced at its frame rate through the API: a file job's settings
   (4-frame chunks) against --live (1-frame chunks, encoder tuned for latency); fps and the added
   latency per frame, arrival to encoded and muxed, p50/p95/p99; CPU seconds per frame (all
   threads). Then --live on moving bars at 320x180 / 30 fps and 960x540 / 24 fps.
2. As fast as it goes, the model path only (no fallback): fps per input size; the largest >= 30 fps.
   Then each path --live can take (the model, the light model, bicubic) alone on a 640x360 frame:
   ms per frame for the processing stage (Y and chroma), beside its Set5/Set14 x2 Y-PSNR from the
   shipped weights' manifest (bicubic's from the same protocol).
3. Overload: a clip whose frame rate is 1.5x what the model sustains, --live: frames per path.
4. Over real UDP on the loopback, the same sender and receiver around vsr-pipe --live and around
   ``ffmpeg -i udp://... -vf scale=...:flags=lanczos -tune zerolatency -f mpegts udp://...``: the
   latency each adds, k-th frame sent to k-th frame received (neither reorders nor drops here).
5. Start-up: the command started on the sample file, --live, MPEG-TS to a pipe: seconds until its
   first output byte (imports, probe, engines built and warmed, first frame), beside FFmpeg's chain.
6. Beside a CPU-heavy job: the sample paced again with ``--max-latency`` 300 ms while another
   process runs torch convolutions nonstop, on 1 thread (a ``deliver --threads 1`` fit) and on 2
   (torch's default here): the ceiling must hold (p99 under it, nothing dropped), the controller
   taking what the CPU allows.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vsr_pipe  # noqa: E402
from bench.common import SAMPLE, bars_clip, bench_parser  # noqa: E402
from vsr_pipe.config import LiveOptions  # noqa: E402


def paced(src: Path, live: bool, out: Path, **kw) -> dict:
    """One real-time run of ``src``: fps, latency percentiles, frames per path, CPU per frame."""
    import resource

    options = {"live": LiveOptions(**kw)} if live else {}
    before = resource.getrusage(resource.RUSAGE_SELF)
    s = vsr_pipe.upscale(str(src), str(out), scale=2, realtime=True, **options)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"frames": s.frames, "fps": round(s.fps, 2), "latency_ms": s.latency_ms, "paths": s.paths,
            "dropped": s.dropped, "cpu_ms_per_frame": round(1000 * cpu / max(1, s.frames), 1)}  # fmt: skip


def path_costs(src: Path, repeats: int = 10) -> dict:
    """Each --live path alone on one frame of ``src``: ms per frame, and its Set5/Set14 x2 Y-PSNR
    measured through the path's own engines (the model's INT8, where --live runs it so)."""
    from vsr_pipe.config import PipelineOptions, Scale
    from vsr_pipe.pipeline.ring import allocate_chunk
    from vsr_pipe.pipeline.run import prepare

    opened = prepare(str(src), PipelineOptions(scale=Scale(2, 2), live=LiveOptions()))
    try:
        stages, plan = opened.run.stages, opened.plan
        chunk, out = allocate_chunk(plan.src, 1), allocate_chunk(plan.dst, 1)
        chunk.count = 1
        chunk.planes[0][0] = opened.source.preview().planes[0]
        rows = {}
        for path, name in enumerate(stages.path_names):
            stages.process(chunk, out, path)
            started = time.perf_counter()
            for _ in range(repeats):
                stages.process(chunk, out, path)
            ms = 1000 * (time.perf_counter() - started) / repeats
            models = getattr(stages.paths[path], "luma_stages", [])
            rows[name] = {"ms_per_frame": round(ms, 1), **{f"{s.lower()}_x2_db": path_psnr(models, s) for s in ("Set5", "Set14")}}
        return rows
    finally:
        opened.close()


def path_psnr(models: list, image_set: str) -> float | None:
    """Y-PSNR x2 on ``image_set`` (the benchmarks' protocol) of Y through ``models`` (none: bicubic)."""
    from vsr_pipe.engines.ort_session import HostOrtEngine
    from vsr_pipe.quality.images import bicubic_upscaler, evaluate_folder, luma_upscaler

    folder = ROOT.parent / "shared" / "data" / image_set
    if not folder.is_dir():
        return None

    def through(y: np.ndarray) -> np.ndarray:
        x = y.astype(np.float32)[None, None]
        for model in models:
            if isinstance(model, HostOrtEngine):
                x = model(x)
            else:  # an engine of the torch way
                import torch

                x = model(torch.from_numpy(x)).cpu().numpy()
        return x[0, 0].astype(np.float64)

    upscale = luma_upscaler(through) if models else bicubic_upscaler
    return round(evaluate_folder(folder, 2, upscale, with_ssim=False).psnr, 3)


BUSY = """
import torch, sys
torch.set_num_threads(int(sys.argv[1]))
x, conv = torch.rand(8, 16, 96, 96), torch.nn.Conv2d(16, 16, 3, padding=1)
while True:
    with torch.no_grad():
        conv(x)
"""


def beside_busy_job(src: Path, out: Path, threads: int, max_latency_ms: float = 300.0) -> dict:
    """``paced(src, --live)`` while another process computes nonstop on ``threads`` threads."""
    job = subprocess.Popen([sys.executable, "-c", BUSY, str(threads)])
    try:
        time.sleep(2.0)  # the job is up and computing
        return paced(src, True, out, max_latency_ms=max_latency_ms) | {"max_latency_ms": max_latency_ms}
    finally:
        job.kill()
        job.wait()


def first_output_s(command: list[str]) -> float | None:
    """Seconds from starting ``command`` to its first byte on standard output."""
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    first = proc.stdout.read(1)
    elapsed = time.monotonic() - started
    proc.kill()
    proc.wait()
    return round(elapsed, 2) if first else None


def show(name: str, r: dict) -> None:
    lat = r["latency_ms"] or {}
    print(f"  {name}: {r['fps']} fps, latency p50 {lat.get('p50_ms')} ms, p95 {lat.get('p95_ms')} ms, "
          f"p99 {lat.get('p99_ms')} ms, paths {r['paths']}, dropped {r['dropped']}, "
          f"CPU {r['cpu_ms_per_frame']} ms/frame", flush=True)  # fmt: skip


def throughput(sizes: list[tuple[int, int]], frames: int, folder: Path) -> dict:
    """Frames per second of --live's model path, unpaced, per input size."""
    fps = {}
    for w, h in sizes:
        clip = bars_clip(folder / f"t{w}x{h}.mp4", w, h, frames, fps=30)
        s = vsr_pipe.upscale(str(clip), str(folder / "t.mkv"), scale=2, live=LiveOptions(fallback=False))
        fps[f"{w}x{h}"] = round(s.fps, 2)
        print(f"  {w}x{h} -> x2: {s.fps:.1f} fps", flush=True)
    return fps


def udp_latency(command: list[str], src: Path, in_port: int, out_port: int, start_wait_s: float) -> dict:
    """Added latency of a filter between a real-time UDP sender and a UDP receiver, per frame."""
    import av

    received: list[float] = []

    def receive() -> None:
        with av.open(f"udp://127.0.0.1:{out_port}?timeout=20000000", timeout=(60, 5)) as c:
            try:
                for packet in c.demux(c.streams.video[0]):
                    if packet.size:
                        received.append(time.monotonic())
            except av.error.FFmpegError:
                pass

    rx = threading.Thread(target=receive, daemon=True)
    rx.start()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    time.sleep(start_wait_s)  # the filter binds its input before the sender starts
    sent = send_times(src, f"udp://127.0.0.1:{in_port}?pkt_size=1316")
    rx.join(60)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # blocked on a read that will never come
        proc.kill()
        proc.wait(10)
    n = min(len(sent), len(received))
    lat = np.array(received[:n]) - np.array(sent[:n])
    steady = lat[np.array(sent[:n]) >= sent[0] + 2.0] if n else lat  # after the first 2 s: start-up left out

    def ms(values: np.ndarray, q: int) -> float | None:
        return round(float(np.percentile(values, q)) * 1000, 1) if len(values) else None

    return {
        "frames_sent": len(sent),
        "frames_received": len(received),
        "p50_ms": ms(lat, 50),
        "p99_ms": ms(lat, 99),
        "steady_p50_ms": ms(steady, 50),
        "steady_p99_ms": ms(steady, 99),
        # a live filter cannot answer before its input comes: start-up counted from the first frame sent
        "first_packet_after_send_s": round(received[0] - sent[0], 3) if n else None,
    }


def send_times(src: Path, url: str) -> list[float]:
    """Send ``src`` at its pace; the time each video packet left."""
    import av

    times = []
    with av.open(str(src)) as inp, av.open(url, "w", format="mpegts") as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type == "video"}
        start = time.monotonic()
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            time.sleep(max(0.0, start + float(packet.pts * packet.time_base) - time.monotonic()))
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
            times.append(time.monotonic())
    return times


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = bench_parser(__doc__, data=False)
    parser.add_argument("--json", default=None, help="save the figures here")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the generated clips")
    parser.add_argument("--no-ffmpeg", action="store_true", help="skip the FFmpeg anchor")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("1. the sample clip paced at its frame rate, x2:", flush=True)
        for name, live in (("file settings", False), ("--live", True)):
            show(name, results.setdefault("paced", {}).setdefault(name, paced(SAMPLE, live, folder / "p.mkv")))
        for w, h, rate in ((320, 180, 30), (960, 540, 24)):
            clip = bars_clip(folder / f"paced{w}.mp4", w, h, int(rate * args.seconds), fps=rate)
            name = f"--live {w}x{h} at {rate} fps"
            show(name, results["paced"].setdefault(name, paced(clip, True, folder / "p.mkv")))
        print("2. --live model path unpaced, x2, per input size:", flush=True)
        sizes = [(320, 180), (480, 270), (640, 360), (960, 540)]
        fps = results["throughput_fps"] = throughput(sizes, 30, folder)
        keeps = [s for s, f in fps.items() if f >= 30]
        results["largest_at_30fps"] = keeps[-1] if keeps else None
        print(f"  largest input that keeps 30 fps: {results['largest_at_30fps']}", flush=True)
        print("  each --live path alone, one 640x360 frame (processing stage; Set5 / Set14 x2 Y-PSNR):", flush=True)
        for name, r in results.setdefault("paths", path_costs(SAMPLE)).items():
            print(f"    {name}: {r['ms_per_frame']} ms/frame; {r['set5_x2_db']} / {r['set14_x2_db']} dB", flush=True)
        model_fps = fps["640x360"]
        rate = max(1, round(1.5 * model_fps))
        print(f"3. overload: 640x360 at {rate} fps, 1.5x the {model_fps} fps the model sustains:", flush=True)
        frames = int(rate * args.seconds)
        over = bars_clip(folder / "over.mp4", 640, 360, frames, fps=Fraction(rate))
        r = results["overload"] = paced(over, True, folder / "o.mkv") | {"input_fps": rate}
        print(f"  {r['fps']} fps out of {rate}; frames per path {r['paths']}; latency {r['latency_ms']}", flush=True)
        print("4. over UDP on the loopback, added latency per frame:", flush=True)
        cam = bars_clip(folder / "cam.ts", 640, 360, int(25 * args.seconds), fps=25)
        for name in ("vsr-pipe --live", "ffmpeg lanczos"):
            if name.startswith("ffmpeg") and (args.no_ffmpeg or not shutil.which("ffmpeg")):
                print("  ffmpeg: not on this machine (apt-get install ffmpeg), skipped", flush=True)
                continue
            a, b = free_udp_port(), free_udp_port()
            if name.startswith("vsr"):
                cmd = [sys.executable, "-m", "vsr_pipe", f"udp://127.0.0.1:{a}", "--live", "--scale", "2",
                       "-f", "mpegts", "-o", f"udp://127.0.0.1:{b}?pkt_size=1316", "-q", "--read-timeout", "3"]  # fmt: skip
                wait = 8.0
            else:
                cmd = ["ffmpeg", "-loglevel", "error", "-i", f"udp://127.0.0.1:{a}", "-vf", "scale=1280:720:flags=lanczos",
                       "-c:v", "libx264", "-tune", "zerolatency", "-crf", "18", "-f", "mpegts",
                       f"udp://127.0.0.1:{b}?pkt_size=1316"]  # fmt: skip
                wait = 2.0
            r = results.setdefault("udp", {})[name] = udp_latency(cmd, cam, a, b, wait)
            print(f"  {name}: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms; after 2 s p50 {r['steady_p50_ms']} ms, "
                  f"p99 {r['steady_p99_ms']} ms; first packet {r['first_packet_after_send_s']} s after the first "
                  f"frame sent ({r['frames_received']}/{r['frames_sent']} frames)", flush=True)  # fmt: skip
        print("5. start-up: command started to first output byte, the sample, MPEG-TS to a pipe:", flush=True)
        starts = results["first_output_s"] = {}
        starts["vsr-pipe --live"] = first_output_s(
            [sys.executable, "-m", "vsr_pipe", str(SAMPLE), "--live", "--scale", "2", "-f", "mpegts", "-o", "-", "-q"]
        )
        if shutil.which("ffmpeg") and not args.no_ffmpeg:
            starts["ffmpeg lanczos"] = first_output_s(
                ["ffmpeg", "-loglevel", "error", "-re", "-i", str(SAMPLE), "-vf", "scale=1280:720:flags=lanczos",
                 "-c:v", "libx264", "-tune", "zerolatency", "-crf", "18", "-f", "mpegts", "-"]
            )  # fmt: skip
        for name, seconds in starts.items():
            print(f"  {name}: {seconds} s", flush=True)
        print("6. beside a CPU-heavy job (convolutions nonstop), the sample paced, --max-latency 300:", flush=True)
        for threads in (1, 2):
            r = results.setdefault("beside_busy_job", {})[threads] = beside_busy_job(SAMPLE, folder / "b.mkv", threads)
            show(f"job on {threads} thread{'s' if threads > 1 else ''}", r)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
