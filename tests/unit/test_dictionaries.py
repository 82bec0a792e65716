"""The zstd dictionaries are part of the package format: a client needs the very bytes the server used."""

from __future__ import annotations

import hashlib

import pytest

from vsr_pipe.delivery import dictionaries


def test_the_shipped_dictionaries_never_change():
    # A changed dictionary makes every package written before it unreadable: add a new one instead.
    assert hashlib.sha256(dictionaries.MANIFEST).hexdigest()[:16] == "b5f526eb68644ac0"
    assert hashlib.sha256(dictionaries.CODES).hexdigest()[:16] == "ea97fc8393549ab2"


def test_a_frame_round_trips_and_its_declared_size_is_bounded():
    data = b'{"format":"vsr-pipe-delivery","version":6}'
    frame = dictionaries.compress(data, dictionaries.MANIFEST)
    assert len(frame) < len(data) / 2
    assert dictionaries.decompress(frame, dictionaries.MANIFEST, 1000) == data
    with pytest.raises(dictionaries.DictionaryFrameError, match="at most 10"):
        dictionaries.decompress(frame, dictionaries.MANIFEST, 10)
    with pytest.raises(dictionaries.DictionaryFrameError, match="not a zstd frame"):
        dictionaries.decompress(b"{}", dictionaries.MANIFEST, 1000)
