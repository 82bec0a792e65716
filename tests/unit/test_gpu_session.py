"""The prepared GPU session (bench/gpu_session.sh and its drivers) holds together without a GPU.

The whole rehearsal is ``bash bench/gpu_session.sh --dry-run`` (about two minutes here); these are
the fast checks of what it relies on.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


@functools.cache
def load_bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_session_script_parses_and_states_its_device_call_within_nine_minutes():
    script = BENCH / "gpu_session.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert 'run(command="bash bench/gpu_session.sh", carry=[".whl", ".gpu_data"], timeout_s=560)' in text
    budget = int(re.search(r"BUDGET=\$\{GPU_SESSION_BUDGET_S:-(\d+)\}   #", text).group(1))
    assert budget <= 540 and "TensorRT: not on the GPU machine" in text


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_carried_folders_are_ignored_so_they_travel_only_when_carried():
    out = subprocess.run(["git", "check-ignore", ".whl/a.tar.xz", ".gpu_data/T91/t1.png"], cwd=ROOT, text=True,
                         capture_output=True)  # fmt: skip
    assert out.stdout.split() == [".whl/a.tar.xz", ".gpu_data/T91/t1.png"]


def tiny_config(tmp_path: Path, steps: int):
    irn = load_bench("gpu_train_irn").irn
    return irn.IrnTrainConfig(train_dirs=("unused",), val_dir=None, out_dir=str(tmp_path / "run"), steps=steps,
                              batch=2, lr_patch=8, blocks=(1, 1), growth=8, checkpoint_every=1)  # fmt: skip


def planes() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((48, 48), dtype=np.float32) for _ in range(3)]


def test_training_stops_at_the_deadline_and_the_loop_is_restored(tmp_path):
    gti = load_bench("gpu_train_irn")
    before = gti.irn.LumaPatches
    made: list = []
    with pytest.raises(gti.OutOfTime), gti.prepared_patches(planes(), time.time() - 1, made):
        gti.irn.train(tiny_config(tmp_path, 5), log=lambda *_: None)
    assert gti.irn.LumaPatches is before
    assert len(made) == 1 and made[0].stamps == []


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_the_loop_trains_on_prepared_planes_and_checkpoints(tmp_path):
    gti = load_bench("gpu_train_irn")
    made: list = []
    with gti.prepared_patches(planes(), time.time() + 60, made):
        ckpt = gti.irn.train(tiny_config(tmp_path, 2), log=lambda *_: None)
    model = gti.irn.build_model(tiny_config(tmp_path, 2))
    assert gti.load_checkpoint(ckpt, model, None)["step"] == 2 and len(made[0].stamps) == 2


def test_verdict_needs_every_set_and_factor_better():
    gti = load_bench("gpu_train_irn")
    cell = lambda p, z0, lr: {"psnr": p, "psnr_z0": z0, "lr_psnr": lr}  # noqa: E731
    shipped = {"Set5": {"x2": cell(5.1, 36.6, 42.6)}, "Set14": {"x2": cell(5.3, 32.5, 39.8)}}
    new = {"Set5": {"x2": cell(30.0, 36.7, 40.0)}, "Set14": {"x2": cell(28.0, 32.4, 37.5)}}
    verdict = gti.compare(new, shipped)
    assert verdict["psnr"]["beats"] and not verdict["psnr_z0"]["beats"] and not verdict["lr_at_least_38db"]


def test_engines_bench_has_a_compiled_row_or_says_why_and_no_cuda_rows_on_a_cpu():
    rows = load_bench("engines_gpu").engine_options("cpu")
    compiled = [v for k, v in rows.items() if k.startswith("compiled")]
    assert len(compiled) == 1 and (isinstance(compiled[0], str) or compiled[0].kind == "compile")
    assert not any("CUDA" in k or "fp16" in k for k in rows)
