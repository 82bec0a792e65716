"""Where the time goes: model-only, decode-only, encode-only and end-to-end on the same frames.

    python bench/pipeline_overhead.py [VIDEO] [--scale 2] [--frames 132]

Prints each stage's seconds and fps and the glue ratio end-to-end / (model + decode + encode):
above 1.0 the pipeline's conversions, copies and queues cost time; below 1.0 the stages overlap.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

from bench.common import SAMPLE, bench_parser, decoded_planes, time_process  # noqa: E402
from vsr_pipe.config import EncodeOptions, PipelineOptions, Scale  # noqa: E402
from vsr_pipe.io.encode import AvSink, OutputSpec  # noqa: E402
from vsr_pipe.pipeline.run import prepare, run_to_file  # noqa: E402


def time_decode(path: str) -> tuple[float, list[list[np.ndarray]]]:
    t = time.perf_counter()
    frames = decoded_planes(path)
    return time.perf_counter() - t, frames


def time_model(opened, frames: list[list[np.ndarray]], chunk: int) -> float:
    """The network alone: Y as float tensors in, Y out, chunk by chunk."""
    ys = [torch.from_numpy(np.stack([f[0] for f in frames[i : i + chunk]])).float().unsqueeze(1) / 255.0
          for i in range(0, len(frames), chunk)]  # fmt: skip
    stages = opened.run.stages.rescaler.luma_stages
    with torch.inference_mode():
        for stage in stages:
            stage(ys[0])  # warm-up
        t = time.perf_counter()
        for y in ys:
            for stage in stages:
                y = stage(y)
    return time.perf_counter() - t


def time_encode(opened, frames, encode: EncodeOptions, folder: str) -> float:
    facts = opened.source.facts
    spec = OutputSpec(opened.plan.dst, facts.time_base, facts.rate, facts.color, 0)
    sink = AvSink(os.path.join(folder, "encode_only.mp4"), spec, encode)
    step = int(round(1 / (facts.rate * facts.time_base)))
    t = time.perf_counter()
    for i, planes in enumerate(frames):
        sink.write(planes, i * step)
    sink.finish()
    return time.perf_counter() - t


def main() -> None:
    ap = bench_parser(__doc__, data=False)
    ap.add_argument("video", nargs="?", default=str(SAMPLE))
    ap.add_argument("--scale", default="2")
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--preset", default=None)
    args = ap.parse_args()
    encode = EncodeOptions(preset=args.preset)
    options = PipelineOptions(scale=Scale.parse(args.scale), chunk_frames=args.chunk, encode=encode)
    with tempfile.TemporaryDirectory() as tmp:
        # End to end first, in a process that has run nothing else yet, as a user's run would be;
        # then each stage alone on a pipeline built the same way.
        t = time.perf_counter()
        summary = run_to_file(args.video, os.path.join(tmp, "end_to_end.mp4"), options)
        e2e_s = time.perf_counter() - t
        opened = prepare(args.video, options, for_encode=encode)
        n_threads = torch.get_num_threads()
        decode_s, frames = time_decode(args.video)
        n = len(frames)
        model_s = time_model(opened, frames, args.chunk)
        process_s, outs = time_process(opened, frames, args.chunk)
        encode_s = time_encode(opened, outs, encode, tmp)
    opened.close()
    assert summary.frames == n
    src, dst = opened.plan.src, opened.plan.dst
    print(f"{n} frames {src.width}x{src.height} -> {dst.width}x{dst.height}, {opened.plan.chain}, "
          f"torch threads {n_threads}, {os.cpu_count()} cores")  # fmt: skip
    rows = [("decode only", decode_s), ("model only", model_s), ("process stage (model + glue)", process_s),
            ("encode only", encode_s), ("end to end, streaming", summary.seconds)]  # fmt: skip
    for name, sec in rows:
        print(f"  {name:30s} {sec:7.2f} s  {n / sec:7.1f} fps")
    parts = decode_s + model_s + encode_s
    print(f"  sum model + decode + encode    {parts:7.2f} s")
    # The stage timings above run on an already built pipeline, so the ratio compares like with like:
    # the streaming part of the run. Opening files and building engines is a one-off cost, shown apart.
    print(f"  one-off set-up (open, build engines, open the output)  {e2e_s - summary.seconds:.2f} s")
    print(f"ratio end-to-end (streaming) / (model + decode + encode) = {summary.seconds / parts:.3f}  (goal <= 1.10)")


if __name__ == "__main__":
    main()
