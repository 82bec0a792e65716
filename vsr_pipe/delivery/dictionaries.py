"""zstd with the dictionaries vsr-pipe ships, for a modulation package's small files.

A package's manifest and code files are a few hundred bytes each, and at the low rates where a
package pays every one of them is weighed against the LR's own bytes. Most of such a file is the
same every time: JSON keys, model names, a safetensors header. A raw-content dictionary (zstd's
documented prefix mode: the compressor may refer back into it as if it preceded the data) that
holds those parts leaves in each file only what is particular to it — digests, sizes, codes:
524 -> 228 bytes for a three-chunk manifest, 409 -> 284 for a title's codes.

The dictionaries are part of the format: a client needs the very bytes the server used, so they
never change once shipped (``tests/unit/test_dictionaries.py`` pins their sha256); a new format
adds new ones. Frames carry their uncompressed size, no dictionary ID and no checksum (the
manifest lists each file's sha256), and are read with their declared size bounded before anything
is allocated.
"""

from __future__ import annotations

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LEVEL = 19

# Manifest versions 6 and 7: version 5's JSON (lean_manifest.py), its usual keys, names and shapes.
MANIFEST = (
    b'"layout":"folder","down":"irn","base":["espcn","espcn_y_x3",""],"start":["espcn_y_x3_codec",""],'
    b'"video":["lr.mp4",0,""],"embedded"'
    b'{"format":"vsr-pipe-delivery","version":6,"factor":2,"master_size":[1920,1080],"time_base":"1/1000",'
    b'"frame_rate":"25","lr_offset":"0","base":["espcn","espcn_y_x2",""],"start":["espcn_y_x2_codec",""],'
    b'"correction":[16,4],"video":["lr.m3u8",204,""],"segments":[[0,""],[0,""]],"title":[0,""],'
    b'"chunks":[[0,0,0],[0,0,0,0,""]]}'
)
# A code file (compact.py): the safetensors header of an absolute and of a delta file.
CODES = (
    b'\x88\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{"kind":"absolute","format":"vsr-pipe modulation codes"},'
    b'"codes":{"dtype":"I8","shape":[296],"data_offsets":[0,296]}}   '
    b'\x88\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{"kind":"delta","format":"vsr-pipe modulation codes"},'
    b'"codes":{"dtype":"I8","shape":[296],"data_offsets":[0,296]}}      '
)


class DictionaryFrameError(ValueError):
    """Bytes that are not a bounded zstd frame of the expected size."""


def compress(data: bytes, dictionary: bytes) -> bytes:
    import zstandard

    compressor = zstandard.ZstdCompressor(
        level=LEVEL, dict_data=_dict(dictionary), write_content_size=True, write_checksum=False, write_dict_id=False
    )
    return compressor.compress(data)


def decompress(data: bytes, dictionary: bytes, limit: int) -> bytes:
    """The frame ``data`` decompressed against ``dictionary``, at most ``limit`` bytes; raises
    :class:`DictionaryFrameError` (its message says what is wrong) for anything else. A frame made
    with no dictionary reads the same (it never refers into one)."""
    import zstandard

    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as e:
        raise DictionaryFrameError(f"not a zstd frame ({e})") from None
    if params.content_size <= 0 or params.content_size > limit:
        raise DictionaryFrameError(f"declares {params.content_size} bytes uncompressed (at most {limit})")
    try:
        raw = zstandard.ZstdDecompressor(dict_data=_dict(dictionary)).decompress(data, max_output_size=limit)
    except zstandard.ZstdError as e:
        raise DictionaryFrameError(f"damaged ({e})") from None
    if len(raw) != params.content_size:
        raise DictionaryFrameError(f"{len(raw)} bytes where the frame declares {params.content_size}")
    return raw


def _dict(content: bytes):
    import zstandard

    return zstandard.ZstdCompressionDict(content, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
