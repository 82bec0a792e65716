"""bench/compare_opencv.py refuses, in one line naming the pin, an OpenCV that cannot read its own models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compare_opencv():
    # Loaded from its file, as the benches are run: tests do not import bench.
    spec = importlib.util.spec_from_file_location("bench_compare_opencv", ROOT / "bench" / "compare_opencv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("version", ["4.8.0", "4.14.0", "5.0.0", "5.0.0-pre"])
def test_opencv_that_reads_the_pb_models_passes(compare_opencv, version):
    assert compare_opencv.opencv_version_problem(version) is None


@pytest.mark.parametrize("version", ["5.1.0", "5.2.0-dev", "6.0.0", "unknown"])
def test_opencv_from_5_1_is_refused_in_one_line_naming_version_and_pin(compare_opencv, version):
    problem = compare_opencv.opencv_version_problem(version)
    assert f"OpenCV {version} cannot read" in problem and compare_opencv.OPENCV_PIN in problem
    assert "\n" not in problem


def test_the_pin_is_the_compare_extra_of_pyproject(compare_opencv):
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["compare"] == [compare_opencv.OPENCV_PIN]
