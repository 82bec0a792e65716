"""Running a causal recurrent model (``models/temporal.py``) over a stream, chunk after chunk.

A chunk engine maps a batch of frames to a batch of outputs and forgets them; a recurrent model
needs each frame's predecessor, its own previous output and a hidden state. ``RecurrentRunner``
keeps those between calls, so the pipeline hands it chunks in order as it does any engine and the
result does not depend on how the stream was cut into chunks. The state starts afresh (from the frame
alone, settled by a few steps on it: ``models/temporal.py``'s ``WARMUP_STEPS``) at the first frame,
at a scene cut, when the frame size changes, and on :meth:`reset` (a seek): carrying the past
across a cut would paint the last scene into the next.

Each step runs in torch, or in ONNX Runtime on the graph ``onnx_export.export_recurrent`` writes
(the state an explicit input and output), exported once per weights into the engine cache.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.temporal import WARMUP_STEPS

# A frame starts a new scene when the mean absolute change of its 8x8-block means from the frame
# before is at least 12 codes of 255, delivery's scene-cut rule (``delivery/chunks.py``) at LR
# size: block means ignore noise and most motion (the real camera clips at a quarter size: median
# under 0.4 codes a frame, at most 11 among walking people, 17 across car's one transition).
CUT_MEAN_ABS_DIFF = 12 / 255
CUT_BLOCK = 8


class RecurrentRunner:
    """``runner(y)``: (n, 1, h, w) float frames in stream order -> (n, 1, r*h, r*w), the state
    carried across calls. ``resets`` counts fresh starts (first frame and cuts included)."""

    def __init__(
        self, model: torch.nn.Module, name: str, onnxruntime_threads: int | None = None,
        cut_mean_abs_diff: float = CUT_MEAN_ABS_DIFF,
    ):  # fmt: skip
        """``onnxruntime_threads`` given (0: its default): each step in ONNX Runtime, else in torch."""
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.cut = cut_mean_abs_diff
        self.resets = 0
        self._carried: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._session = None if onnxruntime_threads is None else _session(model, name, onnxruntime_threads)
        self.name = f"{'onnxruntime' if self._session else 'torch'}:{name} (recurrent)"

    def reset(self) -> None:
        """Forget the past: the next frame starts afresh."""
        self._carried = None

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        outs = []
        with torch.inference_mode():
            for k in range(y.shape[0]):
                frame = y[k : k + 1]
                if self._starts_afresh(frame):
                    self.resets += 1
                    self._carried = self.model.initial_state(frame, WARMUP_STEPS)
                prev, prev_out, state = self._carried
                out, state = self._step(frame, prev, prev_out, state)
                self._carried = (frame, out, state)
                outs.append(out)
        return torch.cat(outs)

    def _step(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._session is None:
            return self.model(*inputs)
        from .onnx_export import RECURRENT_INPUTS

        feed = {k: np.ascontiguousarray(v.cpu().numpy()) for k, v in zip(RECURRENT_INPUTS, inputs)}
        out, state = self._session.run(None, feed)
        return torch.from_numpy(out), torch.from_numpy(state)

    def _starts_afresh(self, frame: torch.Tensor) -> bool:
        if self._carried is None:
            return True
        prev = self._carried[0]
        if prev.shape != frame.shape:
            return True
        block = min(CUT_BLOCK, *frame.shape[-2:])
        change = torch.nn.functional.avg_pool2d(frame - prev, block).abs().mean()
        return float(change) >= self.cut


def _session(model: torch.nn.Module, name: str, threads: int):
    """An ONNX Runtime session of ``model``'s recurrent graph, exported once per weights (cached)."""
    import onnxruntime as ort

    from .cache import cache_dir, weights_hash
    from .onnx_export import export_recurrent

    path = cache_dir() / f"{name}-w{weights_hash(model)[:16]}-recurrent.onnx"
    if not path.is_file():
        export_recurrent(model, path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave the cores to the coders
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
