"""A one-line progress bar on stderr: frames, fps, ETA. Silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(
        self, label: str, stream: TextIO = sys.stderr, enabled: bool | None = None, min_interval_s: float = 0.2
    ):
        self.label = label
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._shown = False
        self._size = ""  # " WxH" of the output, once a run says it

    def show(self, progress) -> None:
        """Update from a :class:`~vsr_pipe.pipeline.run.Progress` (live runs add latency and paths)."""
        extra = ""
        if progress.output_size:
            self._size = f" {progress.output_size[0]}x{progress.output_size[1]}"
        if progress.latency_ms is not None:
            extra = f"  latency p50 {progress.latency_ms:.0f} ms"
            if progress.fallback_frames:
                extra += f"  fallback {progress.fallback_frames}"
            if progress.dropped:
                extra += f"  dropped {progress.dropped}"
        self.update(progress.frames, progress.total, progress.elapsed_s, extra)

    def update(self, done: int, total: int, elapsed_s: float, extra: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.min_interval_s and done != total:
            return
        self._last = now
        fps = done / elapsed_s if elapsed_s > 0 else 0.0
        label = self.label + self._size
        if total > 0:
            frac = min(done / total, 1.0)
            filled = int(frac * 24)
            eta = (total - done) / fps if fps > 0 else 0.0
            line = f"{label} [{'#' * filled}{'.' * (24 - filled)}] {done}/{total} frames  {fps:5.1f} fps  ETA {_clock(eta)}"
        else:
            line = f"{label} {done} frames  {fps:5.1f} fps  {_clock(elapsed_s)}"
        self.stream.write("\r" + line + extra + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:d}:{s % 60:02d}"
