"""ONNX Runtime sessions from a cached graph and weight arrays, without torch.

The exported graph (``onnx_export.export_graph``) holds its parameters as external initializers
named by their state-dict keys; a session takes the weights as arrays in their place. This module
also keeps the index from shipped weights to their cached graph, so a CPU run whose graphs are
cached opens its sessions without importing torch (``pipeline/host_stages.py``): torch is what
exports a graph, and what costs a live run its first second.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import EngineUnavailable
from .options import OrtOptions

OPSET = 17


def open_session(graph_path: Path, weights: dict[str, np.ndarray], options: OrtOptions, int8_model: bytes | None = None):
    """An ``InferenceSession`` of ``graph_path`` with ``weights`` in place of its initializers; at
    precision int8, of ``int8_model`` if given (:func:`quantise`'s bytes, e.g. from a cache)."""
    import onnxruntime as ort

    session_options = _session_options(options)
    providers = _providers(options)
    if options.precision == "int8":
        model = int8_model if int8_model is not None else quantise(graph_path, weights)
        return ort.InferenceSession(model, session_options, providers=providers)
    names = sorted(weights)
    # Copied into the graph before optimisation (ONNX Runtime's documented behaviour), so the
    # arrays need not outlive the session and the session runs as fast as one from a file.
    session_options.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(weights[n]) for n in names])
    return ort.InferenceSession(str(graph_path), session_options, providers=providers)


def _session_options(options: OrtOptions):
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    # The INT8 graph stays in plain NCHW: ALL's blocked layout (NCHWc) adds reorders around its
    # quantised convolution that cost more than they save (45-48 -> 40 ms a 640x360 frame here).
    level = "ORT_ENABLE_EXTENDED" if options.precision == "int8" else "ORT_ENABLE_ALL"
    session_options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if options.threads:
        session_options.intra_op_num_threads = options.threads
    session_options.log_severity_level = 3
    # Idle intra-op threads otherwise spin for a while after each call, taking the cores the
    # decoder and encoder threads of the pipeline need in the meantime.
    session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return session_options


def _providers(options: OrtOptions) -> list[str]:
    import onnxruntime as ort

    if options.device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise EngineUnavailable("onnxruntime has no CUDA provider here: install onnxruntime-gpu, or use --device cpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def weights_key(weights: Mapping[str, np.ndarray]) -> str:
    """sha256 over names, shapes and bytes: the identity of a weight set."""
    h = hashlib.sha256()
    for name in sorted(weights):
        h.update(name.encode())
        h.update(str(weights[name].shape).encode())
        h.update(weights[name].tobytes())
    return h.hexdigest()


# Where a convolution sits between two tanh, its input lies in [-1, 1] by construction, and an output
# beyond +-2 only moves tanh within its last 4 %: ranges that need no calibration data. Measured on
# the shipped ESPCN x2 (python bench/live_int8.py): -0.10 / -0.05 dB on Set5 / Set14 at +-2, more at
# +-1.25, +-3 or +-6, and -0.27 to -1.08 dB for every convolution calibrated on frames.
TANH_OUTPUT_RANGE = 2.0


def quantise(graph_path: Path, weights: dict[str, np.ndarray], output_range: float = TANH_OUTPUT_RANGE) -> bytes:
    """The graph with ``weights`` in INT8, as serialised ONNX: statically (QDQ, per-channel INT8
    weights, UInt8 activations) each convolution between two tanh, with the ranges above (its
    output's: +-``output_range``), the rest
    left in fp32 — which is every layer that a small input or output range would cost dB; a graph
    with no such convolution by dynamic quantisation (:func:`_quantise_dynamic`)."""
    import logging
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    proto = graph_with_weights(graph_path, weights)
    made_by = {out: node for node in proto.graph.node for out in node.output}
    used_by: dict[str, list] = {}
    for node in proto.graph.node:
        for name in node.input:
            used_by.setdefault(name, []).append(node)
    middle = [
        node for node in proto.graph.node
        if node.op_type == "Conv" and getattr(made_by.get(node.input[0]), "op_type", "") == "Tanh"
        and [n.op_type for n in used_by.get(node.output[0], [])] == ["Tanh"]
    ]  # fmt: skip
    if not middle:
        return _quantise_dynamic(graph_path, weights)
    bound, edge = np.float32(1.0), np.float32(output_range)
    overrides = {}
    for node in middle:
        overrides[node.input[0]] = [{"rmin": -bound, "rmax": bound}]
        overrides[node.output[0]] = [{"rmin": -edge, "rmax": edge}]

    class OneFrame(CalibrationDataReader):  # every range is overridden; the calibrator needs a run
        def __init__(self):
            self.frames = iter([np.full((1, 1, 16, 16), 0.5, np.float32)])

        def get_next(self):
            x = next(self.frames, None)
            return None if x is None else {"lr": x}

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint on the root logger
    try:
        import onnx

        with tempfile.TemporaryDirectory(prefix="vsr-pipe-int8-") as tmp:
            source, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            onnx.save_model(proto, str(source))
            quantize_static(
                str(source), str(out), OneFrame(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax, nodes_to_quantize=[n.name for n in middle],
                extra_options={"TensorQuantOverrides": overrides},
            )  # fmt: skip
            return out.read_bytes()
    finally:
        root.setLevel(level)


def _quantise_dynamic(graph_path: Path, weights: dict[str, np.ndarray]) -> bytes:
    """The graph with ``weights``, INT8 weights and activations quantised per call (ONNX Runtime's
    dynamic quantisation), as serialised ONNX."""
    import logging
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint on the root logger
    try:
        with tempfile.TemporaryDirectory(prefix="vsr-pipe-int8-") as tmp:
            out = Path(tmp) / "int8.onnx"
            quantize_dynamic(graph_with_weights(graph_path, weights), out, weight_type=QuantType.QInt8)
            return out.read_bytes()
    finally:
        root.setLevel(level)


def graph_with_weights(path: str | Path, weights: dict[str, np.ndarray]):
    """The ``onnx.ModelProto`` of ``path`` (an ``export_graph`` file) with ``weights`` in place
    of its initializers of those names, every tensor held in the proto itself."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))  # reads {path}.data too
    for tensor in proto.graph.initializer:
        if tensor.name in weights:
            tensor.CopyFrom(numpy_helper.from_array(weights[tensor.name], tensor.name))
    return proto


def graph_initializers(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the initializers of an ONNX file, without reading their data.

    Kept beside the file (``.names.json``) once read: importing ``onnx`` to parse the graph is the
    slowest part of opening a cached engine (about a second here), and a live run starts with it."""

    path = Path(path)
    sidecar = path.with_name(path.name + ".names.json")
    try:
        listed = json.loads(sidecar.read_text())
        if listed.get("graph_bytes") == path.stat().st_size:  # a graph exported again is read again
            return {name: tuple(dims) for name, dims in listed["initializers"]}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    names = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    record = {"graph_bytes": path.stat().st_size, "initializers": [[k, list(v)] for k, v in names.items()]}
    try:
        tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, sidecar)
    except OSError:
        pass  # a read-only cache: parse again next time
    return names


class HostOrtEngine:
    """A cached graph in ONNX Runtime with one weight set, on numpy arrays: (n, C, h, w) float32
    in and out. What a host run's stages call; it knows nothing of torch.

    On a CPU with two cores or more, a frame runs as two horizontal bands at once, each in its own
    session on half the threads, overlapping by ``radius`` rows (the network's receptive radius, so
    every output row is exactly the whole frame's): ONNX Runtime's own threads meet at every node
    and its layout and quantisation steps run on one of them, which leaves a core idle. The shipped
    ESPCN in INT8, a 640x360 frame, processing stage: 40-43 ms as two bands (``python bench/live.py``,
    section 2), where the whole frame on two threads took 44-50 ms.
    """

    MIN_BAND_ROWS = 32  # below this, the overlap costs more than the second core gives

    def __init__(self, graph_path: Path, weights: dict[str, np.ndarray], options: OrtOptions, name: str,
                 int8_model: bytes | None = None, radius: int | None = None):  # fmt: skip
        self.name = f"onnxruntime:{name}"
        cores = options.threads or (os.cpu_count() or 1)
        self._radius = radius
        self._bands = 2 if radius is not None and cores >= 2 and options.device == "cpu" else 1
        band_options = replace(options, threads=max(1, cores // self._bands)) if self._bands > 1 else options
        self._sessions = [open_session(graph_path, weights, band_options, int8_model) for _ in range(self._bands)]
        self._pool = ThreadPoolExecutor(self._bands - 1, thread_name_prefix="ort-band") if self._bands > 1 else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        h, r = x.shape[-2], self._radius or 0
        if self._pool is None or h < 2 * self.MIN_BAND_ROWS:
            return self._sessions[0].run(None, {"lr": x})[0]
        half = h // 2
        top = self._pool.submit(self._sessions[1].run, None, {"lr": np.ascontiguousarray(x[..., : half + r, :])})
        bottom = self._sessions[0].run(None, {"lr": np.ascontiguousarray(x[..., half - r :, :])})[0]
        top = top.result()[0]
        scale = top.shape[-2] // (half + r)
        return np.concatenate([top[..., : scale * half, :], bottom[..., scale * r :, :]], axis=-2)


def _index_path(label: str, weights_sha: str) -> Path:
    from .cache import cache_dir

    return cache_dir() / f"{label}-w{weights_sha[:16]}-opset{OPSET}.graph"


def record_graph(label: str, weights_sha: str, graph_path: Path) -> None:
    """Note that shipped weights ``weights_sha`` run as ``label`` on the graph ``graph_path`` (a
    file in the cache), for :func:`indexed_graph`; a cache that cannot be written is left as is."""
    path = _index_path(label, weights_sha)
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"graph": graph_path.name}))
        os.replace(tmp, path)
    except OSError:
        pass


def indexed_graph(label: str, weights_sha: str) -> Path | None:
    """The cached graph that :func:`record_graph` noted for these weights, if it and its data and
    names are all there; else None (the run goes the way that exports it)."""
    try:
        name = json.loads(_index_path(label, weights_sha).read_text())["graph"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    graph = _index_path(label, weights_sha).with_name(str(name))
    if graph.name != name or not all(graph.with_name(graph.name + s).is_file() for s in ("", ".data", ".names.json")):
        return None
    return graph


def cached_int8(label: str, weights_sha: str, graph_path: Path, weights: dict[str, np.ndarray], fresh: bool = False) -> bytes:
    """:func:`quantise`'s model of shipped weights, kept in the cache beside their graph: quantising
    imports ``onnx`` (most of a second), which a live start does once per machine, not every time.
    ``fresh``: quantise again (the cached file would not load)."""
    import onnxruntime

    path = _index_path(label, weights_sha).with_suffix(f".int8-r{TANH_OUTPUT_RANGE:g}-ort{onnxruntime.__version__}.onnx")
    if not fresh:
        try:
            return path.read_bytes()
        except OSError:
            pass
    model = quantise(graph_path, weights)
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(model)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache: quantise again next time
    return model
