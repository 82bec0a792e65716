"""How a job's task runs on its worker: the threads it uses there, and the check that a worker can
reach its input and output (what it asks of a worker: ``vsr_pipe.runners.task_resources``)."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

from ..config import PipelineOptions
from ..errors import InputNotFound, OutputError
from ..runners import TaskResources
from .inputs import is_remote


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
