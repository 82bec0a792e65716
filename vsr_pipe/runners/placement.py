"""Which runner a run gets, and what each of its tasks asks of a worker."""

from __future__ import annotations

import os

from ..config import PipelineOptions
from .base import InProcessRunner, Runner, TaskResources
from .cluster import RayRunner
from .local import ProcessRunner


def make_runner(ray: str | None = None, workers: int | None = None, runtime_env: dict | None = None) -> Runner:
    """``ray`` None: local (this process for one worker, else ``workers`` processes); else Ray at
    that address ("auto" or HOST:PORT)."""
    if ray:
        return RayRunner(ray, workers or 0, runtime_env)
    if not workers or workers <= 1:
        return InProcessRunner()
    return ProcessRunner(workers)


def task_resources(options: PipelineOptions, runner: Runner, cpus: float | None = None) -> tuple[TaskResources, int]:
    """What each task asks (on Ray a GPU when the run is on CUDA, or "auto" on a cluster with GPUs,
    and one CPU unless told; locally the cores split between the workers) and the threads it then
    runs with (0: the defaults)."""
    gpus = 0  # locally every worker sees every GPU and the device option holds as given
    if isinstance(runner, RayRunner) and options.device != "cpu":  # Ray hides GPUs from tasks that ask none
        wanted = options.device.startswith("cuda") or runner.connect().cluster_resources().get("GPU", 0) >= 1
        gpus = 1 if wanted else 0
    if isinstance(runner, InProcessRunner):
        return TaskResources(num_gpus=gpus), 0
    if cpus is None:
        cpus = 1 if isinstance(runner, RayRunner) else max(1, (os.cpu_count() or 1) // max(1, runner.workers))
    return TaskResources(num_cpus=cpus, num_gpus=gpus), max(1, int(cpus))
