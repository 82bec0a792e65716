"""A model slower than this machine, for the live deadline's tests: every call of the pipeline's model
stage sleeps ``delay_ms`` first (the real engine still runs; only the clock is spent), as on a slower
machine. The package has no such option; the tests wrap its stages from outside.

    python -m tests.support.slow_model DELAY_MS VSR-PIPE-ARGS...   # the command line, model slowed
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator


class Delayed:
    """``call`` (an engine: (N, C, h, w) in, out) that first sleeps ``delay_ms`` milliseconds."""

    def __init__(self, call: Callable, delay_ms: float):
        self.call, self.delay_s = call, delay_ms / 1000.0

    def __call__(self, x):
        time.sleep(self.delay_s)
        return self.call(x)


@contextlib.contextmanager
def slow_model(delay_ms: float) -> Iterator[None]:
    """Within: the model stages of every run built take ``delay_ms`` longer per call; the cheaper
    paths the live deadline falls back on keep their speed."""
    import vsr_pipe.pipeline.run as run

    build = run.build_stages

    def slowed(*args, **kwargs):
        stages, engine = build(*args, **kwargs)
        stages.rescaler.luma_stages = [Delayed(call, delay_ms) for call in stages.rescaler.luma_stages]
        return stages, engine

    run.build_stages = slowed
    try:
        yield
    finally:
        run.build_stages = build


if __name__ == "__main__":
    from vsr_pipe.cli import main

    with slow_model(float(sys.argv[1])):
        main(sys.argv[2:], prog_name="vsr-pipe")
