"""Resuming a ``deliver``: each fitted chunk is saved as soon as it ends, and a rerun with the same
inputs loads it instead of fitting it again.

The cache is a hidden folder beside the package (``.title.chunks/``), removed once the package is in
place. An entry is ``KEY.safetensors`` (the correction's tensors) and ``KEY.json`` (the rest of the
:class:`~.fit.ChunkResult`), never a pickle. ``KEY`` is a sha256 of everything the fit depends on:
the task's LR and master planes as decoded (bytes, dtype, shape), its index (its seed), the base
model and its shipped weights' sha256, the fit settings but ``threads``, the package format and
this vsr-pipe's version. A missing, half-written or unreadable entry is simply fitted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import OutputError
from .fit import ChunkResult, ChunkTask
from .package import FORMAT, VERSION

CACHE_VERSION = 1


def cache_folder(target: Path) -> Path:
    """Where the finished chunks of a package being made at ``target`` wait: ``.NAME.chunks``."""
    return target.with_name(f".{target.name}.chunks")


def task_key(task: ChunkTask) -> str:
    """The sha256 (hex) naming ``task``'s result in the cache (see the module's docstring)."""
    from .._version import __version__
    from ..weights.shipped import shipped_sha

    settings = {k: v for k, v in asdict(task.settings).items() if k != "threads"}  # threads change speed only
    header = {
        "cache": CACHE_VERSION, "format": FORMAT, "version": VERSION, "vsr_pipe": __version__,
        "index": task.index, "base": asdict(task.base), "base_sha256": shipped_sha(task.base.weights),
        "settings": settings,
        "lr": [str(task.lr.dtype), list(task.lr.shape)], "hr": [str(task.hr.dtype), list(task.hr.shape)],
    }  # fmt: skip
    h = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode())
    for planes in (task.lr, task.hr):
        h.update(b"\0")
        h.update(np.ascontiguousarray(planes).data)
    for name in sorted(task.start_codes or {}):  # a modulation fit depends on the codes it starts from
        h.update(name.encode() + b"\0" + np.ascontiguousarray(task.start_codes[name], np.int8).tobytes())
    return h.hexdigest()


class ChunkCache:
    """The finished chunks of one package being made, in ``folder``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def load(self, key: str) -> ChunkResult | None:
        """The result saved under ``key``, or None (never saved, half-written, or unreadable)."""
        from safetensors.numpy import load_file

        meta, weights = self.folder / f"{key}.json", self.folder / f"{key}.safetensors"
        if not meta.is_file() or not weights.is_file():
            return None
        try:
            d = json.loads(meta.read_text())
            tensors = load_file(str(weights))
            return ChunkResult(
                int(d["index"]), tensors, tuple(map(float, d["losses"])), tuple(map(float, d["generic_psnr"])),
                tuple(map(float, d["tuned_psnr"])), int(d["steps"]), float(d["seconds"]),
                tuple(map(float, d.get("start_psnr", ()))),
            )  # fmt: skip
        except Exception:  # noqa: BLE001 (any damage means "not there": the chunk is fitted again)
            return None

    def save(self, key: str, result: ChunkResult) -> None:
        """Keep ``result`` under ``key``; the JSON is written last, so a crash mid-way leaves no entry."""
        from safetensors.numpy import save

        meta = {
            "index": result.index, "losses": list(result.losses), "generic_psnr": list(result.generic_psnr),
            "tuned_psnr": list(result.tuned_psnr), "steps": result.steps, "seconds": result.seconds,
            "start_psnr": list(result.start_psnr),
        }  # fmt: skip
        try:
            self.folder.mkdir(exist_ok=True)
            _write(self.folder / f"{key}.safetensors", save(result.tensors))
            _write(self.folder / f"{key}.json", json.dumps(meta).encode())
        except OSError as e:
            raise OutputError(f"cannot save chunk {result.index}'s fit in {self.folder}: {e}") from None

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)
