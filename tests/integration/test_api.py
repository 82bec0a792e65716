"""The Python API: upscale() and frames() for library users."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import vsr_pipe


def test_import_is_light():
    code = "import sys, vsr_pipe; print(any(m == 'torch' or m.startswith('torch.') for m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False", "import vsr_pipe must not import torch"


def test_upscale_returns_a_summary(clip, tmp_path):
    src = clip("in.mp4", frames=4, audio=False)
    summary = vsr_pipe.upscale(str(src.path), str(tmp_path / "o.mp4"), scale="1.5")
    assert summary.frames == 4 and summary.output_size == (240, 144) and not summary.interrupted


def test_frames_iterator_yields_upscaled_frames_with_pts(clip):
    src = clip("in.mp4", frames=5, audio=False)
    frames = list(vsr_pipe.frames(str(src.path), scale=2))
    assert [f.pts for f in frames] == list(src.pts)
    rgb = frames[0].to_ndarray(format="rgb24")
    assert rgb.shape == (192, 320, 3) and rgb.dtype == np.uint8


def test_errors_are_typed_and_catchable_as_builtins(tmp_path):
    with pytest.raises(FileNotFoundError):
        vsr_pipe.upscale(str(tmp_path / "missing.mp4"), str(tmp_path / "o.mp4"))
    with pytest.raises(vsr_pipe.InvalidOption):
        vsr_pipe.upscale(str(tmp_path / "missing.mp4"), str(tmp_path / "o.mp4"), scale=20)


def test_scale_and_size_together_are_refused_as_on_the_command_line(tmp_path):
    with pytest.raises(vsr_pipe.InvalidOption, match="not both"):
        vsr_pipe.upscale(str(tmp_path / "missing.mp4"), str(tmp_path / "o.mp4"), scale=2, size="320x192")
