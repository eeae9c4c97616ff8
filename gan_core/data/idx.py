"""IDX files (the format of MNIST and Fashion-MNIST), raw or gzip, read with numpy.

Layout: two zero bytes, a type code, the number of dimensions, then one big-endian uint32
per dimension, then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

# IDX type code -> numpy dtype (big-endian where it matters).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """An IDX file is corrupt, truncated or not what was expected; the message names the file."""


def read_idx(path: str | Path) -> np.ndarray:
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IdxFormatError(f"{path}: file is {len(raw)} bytes, too short for an IDX header")
    zero, type_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0:
        raise IdxFormatError(f"{path}: wrong magic number 0x{raw[:4].hex()} (an IDX file starts with two zero bytes)")
    if type_code not in IDX_DTYPES:
        raise IdxFormatError(f"{path}: unknown IDX type code 0x{type_code:02x}; known: {[hex(c) for c in IDX_DTYPES]}")
    if ndim == 0:
        raise IdxFormatError(f"{path}: IDX header declares zero dimensions")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise IdxFormatError(f"{path}: truncated header ({len(raw)} bytes, {header_size} needed for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = len(raw) - header_size
    if body != expected:
        problem = "truncated" if body < expected else "has trailing bytes"
        raise IdxFormatError(
            f"{path}: {problem}: header says shape {list(shape)} ({expected} bytes of data), file has {body}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as IDX (gzip when the name ends in .gz); used for tests and data export."""
    path = Path(path)
    codes = {v.newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"dtype {array.dtype} has no IDX type code")
    code = codes[native]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
            handle.seek(0)
            if head == b"\x1f\x8b":  # gzip magic, whatever the file is called
                return gzip.decompress(handle.read())
            return handle.read()
    except FileNotFoundError:
        raise IdxFormatError(f"{path}: file not found") from None
    except (OSError, EOFError) as error:  # gzip raises these for corrupt or cut streams
        raise IdxFormatError(f"{path}: corrupt gzip stream ({error})") from None
