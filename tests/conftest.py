"""Shared fixtures: tiny generated clips and a way to run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.media import make_clip

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "big_buck_bunny_640x360.mp4"
SHARED_DATA = ROOT.parent / "shared" / "data"


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m vsr_pipe ARGS`` in a subprocess; text output, no check."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("VSR_PIPE_DEBUG", None)
    kw.setdefault("text", True)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("cwd", ROOT)
    return subprocess.run([sys.executable, "-m", "vsr_pipe", *map(str, args)], timeout=timeout, env=env, **kw)


@pytest.fixture
def clip(tmp_path):
    """``clip(name, **make_clip_kwargs)`` writes a clip under the test's temp folder."""

    def make(name: str = "in.mp4", **kwargs):
        return make_clip(tmp_path / name, **kwargs)

    return make


def pytest_collection_modifyitems(config, items):
    have_data = (SHARED_DATA / "Set5").is_dir()
    skip = pytest.mark.skip(reason=f"needs {SHARED_DATA} (training/benchmark images)")
    for item in items:
        if "needs_data" in item.keywords and not have_data:
            item.add_marker(skip)
