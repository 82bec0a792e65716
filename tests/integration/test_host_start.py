"""A CPU run whose graphs are cached builds its stages without torch (``pipeline/host_stages.py``):
the same frames as the torch way, and a live start that never imports torch."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLE
from vsr_pipe.config import LiveOptions, PipelineOptions, Scale
from vsr_pipe.io.base import Frame
from vsr_pipe.io.live import open_source
from vsr_pipe.pipeline.host_stages import host_stages
from vsr_pipe.pipeline.plan import IRN_WEIGHTS, make_plan
from vsr_pipe.pipeline.ring import allocate_chunk
from vsr_pipe.pipeline.stages import build_stages
from vsr_pipe.weights.shipped import manifest, shipped_sha

FRAMES = 3


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_PIPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def plan_and_chunk(**options):
    with open_source(str(SAMPLE), PipelineOptions().source) as source:
        opts = dataclasses.replace(PipelineOptions(model="espcn"), **options)
        plan = make_plan(opts, source.facts, source.facts.layout, shipped_sha(IRN_WEIGHTS)[:12], frozenset(manifest()))
        chunk = allocate_chunk(plan.src, FRAMES)
        frames = (item for item in source.items() if isinstance(item, Frame))
        for k, frame in zip(range(FRAMES), frames):
            for plane, src in zip(chunk.planes, frame.planes):
                plane[k] = src
        chunk.count = FRAMES
    return plan, chunk


@pytest.mark.parametrize("scale", [2.0, 1.5])
def test_host_stages_compute_the_torch_stages_frames(cache, scale):
    plan, chunk = plan_and_chunk(scale=Scale(scale, scale), live=LiveOptions())
    assert host_stages(plan) is None  # nothing exported yet: the torch way, which indexes its graphs
    torch_way, _ = build_stages(plan)
    host_way, engine = host_stages(plan)
    assert engine == "onnxruntime (cpu, model int8)" and host_way.path_names == torch_way.path_names
    for path in range(len(torch_way.paths)):  # the model, the light model, bicubic
        outs = []
        for stages in (torch_way, host_way):
            out = allocate_chunk(plan.dst, FRAMES)
            stages.process(chunk, out, path)
            outs.append([p[:FRAMES].astype(np.int16) for p in out.planes])
        for a, b in zip(*outs):
            assert np.abs(a - b).max() <= 1, f"path {host_way.path_names[path]}"


def test_what_needs_torch_goes_the_torch_way(cache):
    plan, _ = plan_and_chunk()
    build_stages(plan)
    assert host_stages(plan) is not None
    for asked in ({"engine": "torch"}, {"device": "cuda"}, {"precision": "fp16"}, {"tile": 64}):
        other, _ = plan_and_chunk(**asked)
        assert host_stages(other) is None, asked


def test_a_live_start_with_cached_graphs_imports_no_torch(tmp_path):
    env = {**os.environ, "VSR_PIPE_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-X", "importtime", "-m", "vsr_pipe", str(SAMPLE), "--live", "--scale", "2", "-t", "0.3",
            "--json", "-q", "-o"]  # fmt: skip
    runs = [subprocess.run([*args, str(tmp_path / f"{k}.mkv")], capture_output=True, text=True, env=env, cwd=ROOT,
                           timeout=120) for k in range(2)]  # fmt: skip
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout)["engine"] == "onnxruntime (cpu, model int8)"
    first, second = (
        {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if "import time" in line} for run in runs
    )
    assert "torch" in first  # exported the graphs
    assert "torch" not in second and "onnxruntime" in second


def test_a_cached_graph_that_will_not_load_sends_the_run_the_torch_way(cache):
    from vsr_pipe.pipeline.run import build_stages as any_way

    plan, _ = plan_and_chunk()
    build_stages(plan)
    for graph in cache.glob("espcn_x2-*.onnx"):
        graph.write_bytes(b"truncated")
    assert host_stages(plan) is None
    stages, engine = any_way(plan)  # the torch way: exports the graph again
    assert engine == "onnxruntime (cpu)" and host_stages(plan) is not None
