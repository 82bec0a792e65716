"""ONNX Runtime engine: the exported graph on the CPU (or CUDA with onnxruntime-gpu).

One graph file per architecture sits in the engine cache; each weight set gets its own prepared
``InferenceSession`` made from that file, with the weights put in place of the graph's
initializers in memory before ONNX Runtime optimises it. Swapping weights is a dict lookup once a
set has been prepared; nothing is re-exported or written.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import torch

from ..errors import EngineUnavailable
from .onnx_export import cached_graph, weight_arrays
from .options import OrtOptions
from .ort_session import graph_initializers, open_session, weights_key
from .state import match_state

# Prepared sessions kept per engine, least recently used dropped first (and rebuilt if needed);
# each holds its own idle intra-op threads.
MAX_SESSIONS = 16


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OrtEngine:
    """Runs a model's ONNX graph, exported once per architecture and cached on disk.

    ``reused`` tells whether the graph file came from the cache.
    """

    def __init__(self, model: torch.nn.Module, options: OrtOptions, name: str):
        if not available():
            raise EngineUnavailable("engine onnxruntime asked for, but the onnxruntime package is not installed")
        if options.precision not in ("fp32", "int8"):
            raise EngineUnavailable(f"onnxruntime engine precision {options.precision}: choose fp32 or int8")
        self.options = options
        self.model_name = name
        self.name = f"onnxruntime:{name}"
        self.device = torch.device("cpu")
        self.channels = getattr(model, "num_ch", 1)
        self.model = model.eval().float().cpu()
        self._state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._sessions: OrderedDict[str, object] = OrderedDict()
        self._sessions_lock = threading.Lock()
        # One graph per architecture, whatever the weights.
        self.graph_path, self.reused = cached_graph(name, self.model, self.channels)
        try:
            self._graph_names = self._read_names()
            self._session = self._session_for(self._weights(self._state))
        except EngineUnavailable:
            raise
        except Exception:
            if not self.reused:  # a fresh export that fails is a real error
                raise
            self.graph_path.unlink()  # corrupt or stale cache entry: export again, once
            self.graph_path, self.reused = cached_graph(name, self.model, self.channels)
            self._graph_names = self._read_names()
            self._session = self._session_for(self._weights(self._state))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(self._session.run(None, {"lr": arr})[0])

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None:
        """Make ``state`` current: its prepared session if there is one, else a new one from the
        cached graph. Raises ``WeightsError`` if ``state`` does not fit the model."""
        merged = {**self._state, **match_state(self.model, state)}
        self._session = self._session_for(self._weights(merged))
        self._state = merged

    def prepare(self, state: Mapping[str, torch.Tensor]) -> None:
        """Build the session for ``state`` now, so that a later ``load_weights(state)`` is a lookup."""
        self._session_for(self._weights({**self._state, **match_state(self.model, state)}))

    def _weights(self, state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """The graph's initializers that come from ``state``, as arrays (float32 where floating)."""
        return weight_arrays(state, self._graph_names)

    def _read_names(self) -> set[str]:
        names = set(graph_initializers(self.graph_path))
        if self._state and not names & set(self._state):
            raise EngineUnavailable(f"the ONNX export of {self.model_name} lost its parameters' names")
        return names

    def _session_for(self, weights: dict[str, np.ndarray]):
        # prepare() may run on a thread that delivers weights while the run swaps on its own: the
        # table is shared under a lock, a session is built outside it.
        key = weights_key(weights)
        with self._sessions_lock:
            session = self._sessions.get(key)
        if session is None:
            session = self._open(weights)
        with self._sessions_lock:
            session = self._sessions.setdefault(key, session)
            self._sessions.move_to_end(key)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session

    def _open(self, weights: dict[str, np.ndarray]):
        return open_session(self.graph_path, weights, self.options)
