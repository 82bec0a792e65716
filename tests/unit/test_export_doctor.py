"""`vsr-pipe export` writes graphs that run; `vsr-pipe doctor` reports this machine."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from vsr_pipe.cli import main


def test_export_writes_an_espcn_graph_that_upscales_any_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    target = tmp_path / "espcn.onnx"
    result = CliRunner().invoke(main, ["export", "--scale", "3", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == str(target)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    (hr,) = session.run(None, {session.get_inputs()[0].name: np.random.rand(2, 1, 10, 14).astype(np.float32)})
    assert hr.shape == (2, 1, 30, 42)


@pytest.mark.parametrize("scale, levels", [("0.5", 1), ("2", 1), ("1.5x2", 1), ("0.4", 2), ("3", 2)])
def test_export_of_the_rescaler_writes_both_directions_of_its_band(scale, levels, tmp_path, monkeypatch):
    import vsr_pipe.export

    calls = []  # the graphs themselves are tested in test_rescaler.py; tracing them here takes 10 s

    def export_rescaler(net, n, prefix):
        calls.append(n)
        return prefix.with_name(f"{prefix.name}-down.onnx"), prefix.with_name(f"{prefix.name}-up.onnx")

    monkeypatch.setattr(vsr_pipe.export, "export_rescaler", export_rescaler)
    result = CliRunner().invoke(main, ["export", "--model", "irn", "--scale", scale, "-o", str(tmp_path / "irn")])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(tmp_path / "irn-down.onnx"), str(tmp_path / "irn-up.onnx")]
    assert calls == [levels]


@pytest.mark.parametrize("args", [["--scale", "1.5"], ["--model", "irn", "--scale", "5"]])
def test_export_refuses_what_is_not_shipped_in_one_line(args, tmp_path):
    result = CliRunner().invoke(main, ["export", *args, "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert not any(tmp_path.iterdir())


def test_doctor_names_versions_engines_codecs_and_the_cache():
    import torch

    from vsr_pipe.doctor import doctor_rows
    from vsr_pipe.engines.cache import cache_dir

    rows = dict(doctor_rows())
    assert {"vsr-pipe", "python", "torch", "onnxruntime", "hardware encoders", "engine cache"} <= set(rows)
    assert "libx264" in rows["software encoders"] and rows["engine cache"] == str(cache_dir())
    assert ("cuda" in rows) != torch.cuda.is_available()
    printed = CliRunner().invoke(main, ["doctor"]).stdout.splitlines()
    assert printed[0].split() == ["vsr-pipe", rows["vsr-pipe"]] and len(printed) == len(rows)


def test_doctor_lists_only_hardware_encoders_that_open_here():
    from vsr_pipe.doctor import doctor_rows
    from vsr_pipe.io.encoders import encoder_opens

    listed = dict(doctor_rows())["hardware encoders"]
    names = [] if listed == "none that open here" else listed.split(", ")
    assert all(encoder_opens(name) for name in names)
    for compiled_in in ("h264_nvenc", "hevc_qsv", "h264_v4l2m2m"):  # listed by FFmpeg, GPU or not
        assert (compiled_in in names) == encoder_opens(compiled_in)
