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
from pathlib import Path

import numpy as np

from ..errors import EngineUnavailable
from .options import OrtOptions

OPSET = 17


def open_session(graph_path: Path, weights: dict[str, np.ndarray], options: OrtOptions):
    """An ``InferenceSession`` of ``graph_path`` with ``weights`` in place of its initializers."""
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if options.threads:
        session_options.intra_op_num_threads = options.threads
    session_options.log_severity_level = 3
    # Idle intra-op threads otherwise spin for a while after each call, taking the cores the
    # decoder and encoder threads of the pipeline need in the meantime.
    session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = _providers(options)
    if options.precision == "int8":
        # Dynamic quantisation derives the INT8 weights and their scales from the weights
        # themselves, so each weight set is quantised anew (in memory; nothing is cached).
        return ort.InferenceSession(_quantise_dynamic(graph_path, weights), session_options, providers=providers)
    names = sorted(weights)
    # Copied into the graph before optimisation (ONNX Runtime's documented behaviour), so the
    # arrays need not outlive the session and the session runs as fast as one from a file.
    session_options.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(weights[n]) for n in names])
    return ort.InferenceSession(str(graph_path), session_options, providers=providers)


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
    in and out. What a host run's stages call; it knows nothing of torch."""

    def __init__(self, graph_path: Path, weights: dict[str, np.ndarray], options: OrtOptions, name: str):
        self.name = f"onnxruntime:{name}"
        self._session = open_session(graph_path, weights, options)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"lr": np.ascontiguousarray(x, dtype=np.float32)})[0]


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
