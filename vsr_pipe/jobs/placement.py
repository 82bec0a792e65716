"""Where and how a task runs: what it asks of a worker, the threads it uses there, and the check
that a worker can reach its input and output."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

from ..config import PipelineOptions
from ..errors import InputNotFound, OutputError
from .inputs import is_remote
from .runners import InProcessRunner, RayRunner, Runner, TaskResources


def check_reachable(source: str, output: str) -> None:
    """Fail with a line that names this worker when it cannot read ``source`` or reach the folder
    of ``output``: on a cluster both must be on storage every node mounts at the same path."""
    host = socket.gethostname()
    if not is_remote(source) and "://" not in source and not Path(source).exists():
        raise InputNotFound(
            f"worker {host} cannot read input {source}: no such file there (on a cluster, inputs must be on a "
            "path every node mounts, or an http(s) URL)"
        )
    root = Path(output).parent
    while not root.exists() and root != root.parent:
        root = root.parent
    if not os.access(root, os.W_OK):
        raise OutputError(f"worker {host} cannot write under {Path(output).parent} (a shared, writable path is needed)")


def per_task_options(options: PipelineOptions, threads: int, resources: TaskResources | None = None) -> PipelineOptions:
    """``threads`` for the model and the encoder unless the user chose (0: leave as they are), so
    that tasks side by side do not oversubscribe the cores; a task given a GPU runs on "cuda", the
    one its worker was given (Ray shows a task only its own GPUs)."""
    if resources is not None and resources.num_gpus and options.device != "cuda":
        options = dataclasses.replace(options, device="cuda")
    if options.threads or not threads:
        return options
    encode = options.encode
    if not any(k == "threads" for k, _ in encode.codec_options):
        encode = dataclasses.replace(encode, codec_options=(*encode.codec_options, ("threads", str(threads))))
    return dataclasses.replace(options, threads=threads, encode=encode)


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
