"""Which network protocols this build of FFmpeg (the one PyAV bundles) can read and write."""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from functools import lru_cache

import av

# Demuxers that act as protocols for a user (rtsp://, an HLS playlist over http).
_FORMAT_PROTOCOLS = {"rtsp": "rtsp", "hls": "hls"}
_LOCAL = {"file", "pipe", "fd", "cache", "async", "concat", "concatf", "crypto", "data", "subfile", "md5", "tee"}


@lru_cache(maxsize=1)
def protocols() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(input protocols, output protocols) of the linked libavformat; empty when it cannot be asked."""
    lib = _libavformat()
    if lib is None:
        return (), ()
    enum = lib.avio_enum_protocols
    enum.restype = ctypes.c_char_p
    enum.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
    found = []
    for output in (0, 1):
        opaque, names = ctypes.c_void_p(None), []
        while name := enum(ctypes.byref(opaque), output):
            names.append(name.decode())
        found.append(names)
    formats = av.formats_available
    extra = [proto for fmt, proto in _FORMAT_PROTOCOLS.items() if fmt in formats]
    inputs = sorted(set(found[0]) | set(extra))
    return tuple(inputs), tuple(sorted(set(found[1]) | ({"hls"} & set(extra))))


def _libavformat():
    """The libavformat PyAV uses: its bundled copy in a wheel, else the system's."""
    here = os.path.dirname(av.__file__)
    for path in sorted(glob.glob(os.path.join(here, "..", "av.libs", "libavformat*"))) or [
        ctypes.util.find_library("avformat")
    ]:
        if path:
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    return None


def network_protocols() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The network ones only: what a user would put in a URL."""
    inputs, outputs = protocols()
    return tuple(p for p in inputs if p not in _LOCAL), tuple(p for p in outputs if p not in _LOCAL)


def summary_line() -> str:
    """One line for ``vsr-pipe doctor``: what this build reads and writes by URL."""
    inputs, outputs = network_protocols()
    if not inputs and not outputs:
        return "unknown (libavformat could not be asked)"
    return f"in: {', '.join(inputs)}; out: {', '.join(outputs)}"


def protocol_support(url: object) -> str:
    """Why a URL cannot be opened, naming its protocol and what this build supports instead."""
    scheme = str(url).split("://", 1)[0].lower()
    inputs, outputs = network_protocols()
    return (
        f"protocol '{scheme}' is not supported by this FFmpeg build "
        f"(inputs: {', '.join(inputs) or 'unknown'}; outputs: {', '.join(outputs) or 'unknown'})"
    )
