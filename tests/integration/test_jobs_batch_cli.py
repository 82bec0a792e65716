"""``vsr-pipe batch`` as a user runs it: one output per input, a bad file fails alone with its line,
the exit code says whether all succeeded, a second run skips what is done, --split and --ray."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from tests.conftest import run_cli
from tests.integration.test_jobs_split import time_limit  # noqa: F401
from tests.media import make_clip

pytestmark = pytest.mark.slow


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=12)
    make_clip(folder / "b.mkv", frames=10, audio=False)
    (folder / "c.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    return folder


def test_batch_on_local_processes_then_resumed(tmp_path, inputs):
    out = tmp_path / "out"
    first = run_cli("batch", inputs, "-o", out, "--model", "bicubic", "--workers", "2", "--json", timeout=300)
    assert first.returncode == 1, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (2, 0, 1)
    assert summary["frames"] == 22 and summary["fps"] > 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.mp4", "b.mkv"]
    failed = [line for line in first.stderr.splitlines() if "failed" in line and "c.mp4" in line]
    assert len(failed) == 1 and "not a video" in failed[0]
    assert "Traceback" not in first.stderr
    again = run_cli("batch", inputs / "a.mp4", inputs / "b.mkv", "-o", out, "--model", "bicubic", timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("] skipped") == 2 and "0 done, 2 skipped, 0 failed" in again.stderr


def test_missing_input_says_which_worker_cannot_read_it(tmp_path, inputs):
    got = run_cli("batch", tmp_path / "gone.mkv", inputs / "b.mkv", "-o", tmp_path / "out", "--model", "bicubic")
    assert got.returncode == 1
    assert "cannot read input" in got.stderr and "gone.mkv" in got.stderr
    assert (tmp_path / "out" / "b.mkv").is_file()


def test_split_from_the_command_line(tmp_path):
    src = make_clip(tmp_path / "long.mkv", frames=48, max_b_frames=2, crf=10, gop_size=12).path
    got = run_cli("batch", src, "-o", tmp_path / "out", "--model", "bicubic", "--split", "3", "--json", timeout=90)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["frames"] == 48
    bad = run_cli("batch", src, "-o", tmp_path / "out", "--split", "0")
    assert bad.returncode != 0 and "--split 0" in bad.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'vsr-pipe[ray]')"
)
def test_batch_with_ray_from_the_command_line(tmp_path, inputs):
    # The timeout guards against a hang only: a local Ray takes a minute to start on a loaded machine.
    got = run_cli("batch", inputs, "-o", tmp_path / "out", "--model", "bicubic", "--ray", "auto", "--workers", "2",
                  "--json", timeout=300)  # fmt: skip
    assert got.returncode == 1, got.stderr
    summary = json.loads(got.stdout)
    assert (summary["done"], summary["failed"]) == (2, 1)


def test_quiet_still_prints_one_line_per_failed_input(tmp_path, inputs):
    got = run_cli("batch", inputs, "-o", tmp_path / "out", "--model", "bicubic", "--quiet", timeout=120)
    assert got.returncode == 1
    lines = got.stderr.splitlines()
    assert len(lines) == 1 and "failed" in lines[0] and "c.mp4" in lines[0] and "not a video" in lines[0], got.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'vsr-pipe[ray]')"
)
def test_quiet_on_ray_prints_the_failure_and_none_of_rays_lines(tmp_path, inputs):
    got = run_cli("batch", inputs / "b.mkv", inputs / "c.mp4", "-o", tmp_path / "out", "--model", "bicubic",
                  "--ray", "auto", "--workers", "1", "--quiet", timeout=300)  # fmt: skip
    assert got.returncode == 1
    lines = got.stderr.splitlines()
    assert len(lines) == 1 and "failed" in lines[0] and "c.mp4" in lines[0], got.stderr
