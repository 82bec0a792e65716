"""Where tasks run: this process, local worker processes, or Ray.

Nothing here knows about video: batch files, split parts and delivery's per-chunk fine-tunes all go
through the same ``runner.map(fn, tasks, resources, stop)`` (``base.py``).
"""

from .base import CountTally, InProcessRunner, Outcome, Runner, Tally, TaskResources, attempt
from .cluster import ActorTally, RayRunner, cluster_slots
from .local import ProcessRunner
from .placement import make_runner, task_resources

__all__ = [
    "ActorTally",
    "CountTally",
    "InProcessRunner",
    "Outcome",
    "ProcessRunner",
    "RayRunner",
    "Runner",
    "Tally",
    "TaskResources",
    "attempt",
    "cluster_slots",
    "make_runner",
    "task_resources",
]
