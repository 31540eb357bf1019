"""Bounded decoding: no chunk of a store decodes to more bytes than its array's schema allows.

A chunk's decoded size is known before it is decoded: its array's chunk shape
times the item size. Zarr's zstd codec trusts the frame's header instead: a
21-byte chunk whose header declares 64 GiB asks for 64 GiB (a MemoryError
traceback), and chunks that really inflate to 1 GiB each are decoded whole
before anything notices that they cannot be the array's chunks.

:class:`BoundedZstdCodec` is Zarr's ``ZstdCodec`` with one change on read: it
reads the content size the frame declares and refuses a chunk that declares
another size than the schema's, before decoding; a frame that declares no size
is decoded into a buffer of exactly the schema's size, which the decoder may
not overrun. Peak memory of a decode is then one legitimate chunk (plus the
compressed bytes), whatever the chunk says. Writing is unchanged, so stores
stay plain Zarr that any reader opens.

:func:`use_bounded_zstd` selects it for the ``zstd`` codec name through
Zarr's own codec registry and configuration (``zarr.config``'s ``codecs.zstd``
entry), which every array opened afterwards in the process uses. It changes
nothing for valid chunks; it only turns impossible ones into a clean
``ValueError`` that the store's readers report as damage (``read_checked``).

In another process (a Dask worker): an array opened by skdice keeps its codec
objects when it is pickled, so the worker decodes it through
``BoundedZstdCodec`` whether or not skdice was imported there (unpickling
imports this module); and unpickling the codec selects bounded decoding in
that process too, for the arrays it opens itself afterwards. A process that
opens a store's arrays through Zarr before any of that (say
``da.from_zarr("store/test/features")`` in a fresh worker) decodes them with
Zarr's own codec until it imports ``skdice.store`` and opens one through it.

The frame header is parsed here because numcodecs exposes no function that
returns a frame's declared content size; the layout is RFC 8878, section
3.1.1.1.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BoundedZstdCodec", "declared_content_size", "use_bounded_zstd"]

_ZSTD_MAGIC = 0xFD2FB528
#: bytes of the Frame_Content_Size field for each FCS_Flag (0 is 1 byte when Single_Segment)
_FCS_BYTES = (0, 2, 4, 8)
_DICT_ID_BYTES = (0, 1, 2, 4)

_selected = False


def declared_content_size(frame) -> int | None:
    """The decompressed size a zstd frame's header declares, or None when it declares none.

    Parameters
    ----------
    frame : bytes-like
        The start of a zstd frame (at least its header, up to 18 bytes).

    Returns
    -------
    int or None

    Raises
    ------
    ValueError
        When the bytes do not start with a zstd frame header.

    Examples
    --------
    >>> from numcodecs import zstd
    >>> declared_content_size(zstd.compress(bytes(4000), 3))
    4000
    """
    head = memoryview(frame).cast("B")[:18].tobytes()
    if len(head) < 5 or int.from_bytes(head[:4], "little") != _ZSTD_MAGIC:
        raise ValueError("not a zstd frame (no zstd magic number at its start)")
    descriptor = head[4]
    fcs_flag = descriptor >> 6
    single_segment = bool(descriptor & 0x20)
    at = 5 + (0 if single_segment else 1) + _DICT_ID_BYTES[descriptor & 0x03]
    size = 1 if (fcs_flag == 0 and single_segment) else _FCS_BYTES[fcs_flag]
    if size == 0:
        return None
    if len(head) < at + size:
        raise ValueError("a truncated zstd frame header")
    value = int.from_bytes(head[at : at + size], "little")
    return value + 256 if size == 2 else value


#: Longest item a variable-length (string) chunk may hold, in encoded bytes: the
#: paths arrays hold file names, which no file system lets exceed 4 KiB.
MAX_STRING_BYTES = 64 * 2**10


def _chunk_nbytes(chunk_spec) -> tuple[int, bool]:
    """The decoded size of a chunk, and whether that size is exact (fixed-size items).

    Variable-length strings (vlen-utf8: a 4-byte count, then a 4-byte length
    and the bytes of each item) have an upper bound only.
    """
    dtype = chunk_spec.dtype
    native = dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else np.dtype(dtype)
    items = int(np.prod(chunk_spec.shape, dtype=np.int64))
    if native.kind in "OT":  # object or numpy.dtypes.StringDType: variable-length
        return 4 + items * (4 + MAX_STRING_BYTES), False
    return items * int(native.itemsize), True


def _make_codec_class():
    from numcodecs import zstd
    from zarr.codecs import ZstdCodec

    class BoundedZstdCodec(ZstdCodec):
        """Zarr's zstd codec, refusing a chunk that would decode to another size than its schema's."""

        def _decode_sync(self, chunk_bytes, chunk_spec):
            expected, exact = _chunk_nbytes(chunk_spec)
            data = chunk_bytes.as_numpy_array()
            declared = declared_content_size(data)
            if exact and declared is not None and declared != expected:
                raise ValueError(
                    f"the chunk's zstd frame declares {declared:,} decoded bytes where its "
                    f"array's chunk holds {expected:,}: refused before decoding"
                )
            if not exact:
                if declared is None or declared > expected:
                    raise ValueError(
                        "the chunk's zstd frame declares "
                        + ("no decoded size" if declared is None else f"{declared:,} decoded bytes")
                        + f" where its array's chunk of strings holds at most {expected:,}: "
                        "refused before decoding"
                    )
                expected = declared
            out = np.empty(expected, dtype=np.uint8)
            zstd.decompress(data, out)
            return chunk_spec.prototype.buffer.from_array_like(out)

        def __reduce__(self):
            # unpickled in another process (a Dask worker): bounded decoding selected there
            # too, for the arrays that process opens itself afterwards
            return (_unpickled_codec, (self.to_dict(),))

    BoundedZstdCodec.__module__ = __name__
    BoundedZstdCodec.__qualname__ = "BoundedZstdCodec"
    return BoundedZstdCodec


def __getattr__(name):
    if name == "BoundedZstdCodec":  # built on first use: zarr is imported lazily
        cls = _make_codec_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _unpickled_codec(config: dict):
    """A :class:`BoundedZstdCodec` from its ``to_dict()``, bounded decoding selected in this process first."""
    use_bounded_zstd()
    return globals()["BoundedZstdCodec"].from_dict(config)


def use_bounded_zstd() -> None:
    """Make Zarr decode every ``zstd`` chunk through :class:`BoundedZstdCodec` (idempotent).

    Called by the store's readers and writers before they open arrays.
    """
    global _selected
    if _selected:
        return
    import zarr
    from zarr.registry import register_codec

    cls = globals().get("BoundedZstdCodec") or __getattr__("BoundedZstdCodec")
    qualname = f"{cls.__module__}.{cls.__qualname__}"
    register_codec("zstd", cls, qualname=qualname)
    zarr.config.set({"codecs.zstd": qualname})
    _selected = True
