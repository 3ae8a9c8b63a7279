"""Stream rows into and out of ``.npy`` files with bounded memory.

The stages that touch every clip (prepare, features) write arrays far larger than memory at
full size: Speech Commands v0.02 prepared at 16 kHz is 105k x 16000 float32 = 6.7 GB. A
memory map would keep RSS bounded in theory, but every page it touches counts as resident
until the kernel reclaims it, so a sequential pass over a 6.7 GB map shows as 6.7 GB RSS.
Plain buffered reads and appends keep the resident set at one batch.

The files are ordinary ``.npy`` (format 1.0): ``np.load`` reads them, with or without
``mmap_mode``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

MAGIC = b"\x93NUMPY\x01\x00"
HEADER_BYTES = 128  # magic + length + dict, padded: room for any shape with < 40 digits


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A format-1.0 header of exactly HEADER_BYTES, so it can be rewritten in place."""
    # The same dict text np.save writes, so files differ from np.save's only in padding.
    text = (
        f"{{'descr': {np.lib.format.dtype_to_descr(dtype)!r}, 'fortran_order': False, "
        f"'shape': {shape!r}, }}"
    )
    pad = HEADER_BYTES - len(MAGIC) - 2 - len(text) - 1
    if pad < 0:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte .npy header")
    body = (text + " " * pad + "\n").encode("latin1")
    return MAGIC + len(body).to_bytes(2, "little") + body


class NpyWriter:
    """Append rows of shape ``row_shape`` to a new ``.npy`` at ``path``; the row count is
    written into the header on ``close()``, so it need not be known in advance.

    >>> with NpyWriter(path, np.float32, (16000,)) as w:
    ...     w.append(batch)  # (k, 16000)
    """

    def __init__(self, path: str | Path, dtype: np.dtype | type, row_shape: tuple[int, ...]):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(int(d) for d in row_shape)
        self.rows = 0
        self._f = self.path.open("wb")
        self._f.write(_header(self.dtype, (0, *self.row_shape)))

    def append(self, rows: np.ndarray) -> None:
        """Write ``rows`` (k, *row_shape), converted to the file's dtype."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(
                f"{self.path}: rows of shape {rows.shape[1:]}, expected {self.row_shape}"
            )
        self._f.write(rows.tobytes())
        self.rows += len(rows)

    def append_rows_of(self, path: str | Path, first: int, count: int) -> None:
        """Append rows ``first .. first + count`` of the .npy at ``path`` (same dtype and row
        shape), copied by the kernel (``os.copy_file_range``): no pass through Python."""
        shape, dtype, offset = shape_of(path)
        if dtype != self.dtype or tuple(shape[1:]) != self.row_shape:
            raise ValueError(
                f"{path}: rows {dtype} {shape[1:]}, expected {self.dtype} {self.row_shape}"
            )
        if first < 0 or first + count > shape[0]:
            raise ValueError(f"{path}: rows {first}..{first + count} out of {shape[0]}")
        row_bytes = self.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))
        self._f.flush()
        with Path(path).open("rb") as src:
            start, left = offset + first * row_bytes, count * row_bytes
            try:
                while left:
                    done = os.copy_file_range(src.fileno(), self._f.fileno(), left, start)
                    if done == 0:
                        raise ValueError(f"{path}: ended early (truncated?)")
                    start, left = start + done, left - done
            except (AttributeError, OSError):
                # No copy_file_range (macOS) or not across these filesystems: copy in Python.
                src.seek(start)
                self._f.seek(0, os.SEEK_END)
                while left:
                    block = src.read(min(left, 1 << 24))
                    if not block:
                        raise ValueError(f"{path}: ended early (truncated?)") from None
                    self._f.write(block)
                    left -= len(block)
        self._f.seek(0, os.SEEK_END)
        self.rows += count

    def close(self) -> None:
        if self._f.closed:
            return
        self._f.seek(0)
        self._f.write(_header(self.dtype, (self.rows, *self.row_shape)))
        self._f.close()

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def shape_of(path: str | Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, offset of the data) of a C-order ``.npy`` file, read from its header."""
    with Path(path).open("rb") as f:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(f)
        if fortran:
            raise ValueError(f"{path}: Fortran-order arrays are not supported")
        return shape, dtype, f.tell()


def iter_rows(path: str | Path, batch: int) -> Iterator[np.ndarray]:
    """Yield consecutive (<= batch, *row_shape) arrays from a ``.npy`` file, read, not mapped."""
    shape, dtype, offset = shape_of(path)
    row_items = int(np.prod(shape[1:], dtype=np.int64))
    with Path(path).open("rb") as f:
        f.seek(offset)
        for start in range(0, shape[0], batch):
            k = min(batch, shape[0] - start)
            data = np.fromfile(f, dtype=dtype, count=k * row_items)
            if data.size != k * row_items:
                raise ValueError(f"{path}: truncated (expected {shape[0]} rows)")
            yield data.reshape(k, *shape[1:])
