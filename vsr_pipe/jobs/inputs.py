"""A batch's inputs: files, folders and globs expanded, each given its output name, and the key
that says whether an output already made still matches its input and settings."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from .._version import __version__
from ..config import PipelineOptions
from ..errors import InvalidOption

VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .ts .mts .m2ts .mpg .mpeg .flv .wmv .nut .y4m .3gp .ogv".split()
)
_GLOB = set("*?[")


@dataclass(frozen=True)
class BatchInput:
    """One input (a path or an http(s) URL) and its output's path relative to the output folder."""

    spec: str
    name: str


def is_remote(spec: str) -> bool:
    return urlparse(spec).scheme in ("http", "https")


def expand_inputs(args: list[str]) -> list[BatchInput]:
    """Files as named; folders: their video files, recursively, keeping the sub-folders; globs
    (``season1/*.mkv``, ``**``): the files they match; http(s) URLs as they are. A name that is
    none of these stays, so that it fails alone with a clear line. Outputs named the same refuse."""
    found: list[BatchInput] = []
    for arg in args:
        if is_remote(arg):
            found.append(BatchInput(arg, PurePosixPath(urlparse(arg).path).name or "stream.mkv"))
        elif Path(arg).is_dir():
            root = Path(arg)
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            found += [BatchInput(str(p), p.relative_to(root).as_posix()) for p in files]
        elif _GLOB & set(arg) and not Path(arg).exists():
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise InvalidOption(f"no input matches {arg}")
            found += [BatchInput(m, Path(m).name) for m in matches if Path(m).is_file()]
        else:
            found.append(BatchInput(arg, Path(arg).name))
    seen: dict[str, str] = {}
    for item in found:
        if item.name in seen and seen[item.name] != item.spec:
            raise InvalidOption(
                f"{seen[item.name]} and {item.spec} would both write {item.name}: give their folder instead, "
                "which keeps sub-folders apart"
            )
        seen[item.name] = item.spec
    return list({item.spec: item for item in found}.values())


def output_path(out_dir: str | os.PathLike, item: BatchInput, suffix: str | None = None) -> Path:
    """``OUT_DIR/<the input's relative name>``, with ``suffix`` (".mkv") instead of its own if given."""
    name = Path(item.name)
    if suffix:
        name = name.with_suffix(suffix if suffix.startswith(".") else f".{suffix}")
    return Path(out_dir) / name


def job_key(spec: str, options: PipelineOptions, extra: str = "") -> str:
    """A hash of what makes an output: the input's identity (path, size and modification time; a
    URL as it is), every setting, and this package's version."""
    if is_remote(spec):
        identity = spec
    else:
        path = Path(spec).resolve()
        try:
            st = path.stat()
            identity = f"{path}|{st.st_size}|{st.st_mtime_ns}"
        except OSError:
            identity = str(path)
    text = f"{identity}\n{options!r}\n{extra}\n{__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]
