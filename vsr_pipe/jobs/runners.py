"""The runners moved below delivery and jobs, to :mod:`vsr_pipe.runners`; these names stay
importable from here for code written against ``vsr_pipe.jobs.runners``. Import from
``vsr_pipe.runners`` in new code."""

from ..runners import (  # noqa: F401
    ActorTally,
    CountTally,
    InProcessRunner,
    Outcome,
    ProcessRunner,
    RayRunner,
    Runner,
    Tally,
    TaskResources,
    attempt,
    make_runner,
)
