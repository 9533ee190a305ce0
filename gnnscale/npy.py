"""Headers of ``.npy`` files, read and written without touching the data: gnnscale maps, reads
with direct I/O and writes its arrays in blocks of rows, so it handles the header itself."""
import io
import mmap
import struct
import sys
from pathlib import Path
from typing import Tuple

import numpy as np

# Where a feature table's rows start: a disk block boundary, so that a row read with direct I/O
# touches as few blocks as it can.
FEATURE_ALIGNMENT = 4096
NPY_ALIGNMENT = 64  # what np.save pads its headers to


def read_npy_header(path: Path) -> Tuple[Tuple[int, ...], np.dtype, int]:
    """(shape, dtype, offset of the data) from the header of a .npy file, reading nothing else."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            if version not in readers:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, _, dtype = readers[version](file)
            return shape, dtype, file.tell()
    except (ValueError, OSError, SyntaxError) as error:
        raise ValueError(f"{path} is not a readable .npy array: {error}") from error


def check_npy_size(path: Path, shape: Tuple[int, ...], dtype: np.dtype, data_offset: int) -> None:
    """Raises ValueError unless the file holds exactly the bytes its header describes."""
    expected = data_offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = path.stat().st_size
    if actual != expected:
        raise ValueError(f"{path} is {actual} bytes but its header describes {expected} "
                         f"({'truncated' if actual < expected else 'trailing bytes after the array'})")


def npy_header(dtype: np.dtype, shape: Tuple[int, ...], *, alignment: int = NPY_ALIGNMENT) -> bytes:
    """The header of a C-order .npy file of ``dtype`` and ``shape``: byte for byte what np.save
    writes, or, for a larger ``alignment``, the same header padded with spaces so that the data
    starts at a multiple of it (a valid .npy file: its header length field covers the padding).
    Its length does not depend on the first dimension, so a header can be rewritten in place once
    the number of rows is known."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": tuple(int(n) for n in shape)})
    header = buffer.getvalue()
    if alignment == NPY_ALIGNMENT:
        return header
    prefix = len(np.lib.format.magic(1, 0)) + 2  # magic string and the length of the rest
    text = header[prefix:].rstrip(b" \n")
    padding = -(prefix + len(text) + 1) % alignment
    return np.lib.format.magic(1, 0) + struct.pack("<H", len(text) + padding + 1) + text + b" " * padding + b"\n"


# Linux's MAP_NORESERVE, which Python's mmap module does not name: see map_npy.
_MAP_NORESERVE = 0x4000


def map_npy(path: Path) -> np.ndarray:
    """The array of a .npy file mapped copy-on-write (what ``np.load(mmap_mode="c")`` gives), but
    without reserving memory for the copies: with the kernel's default overcommit heuristic a
    private writable mapping larger than memory and swap is refused (ENOMEM), so a feature table
    larger than RAM could not be opened. Pages are read on demand; a write changes this process's
    copy only."""
    path = Path(path)
    shape, dtype, offset = read_npy_header(path)
    with open(path, "rb") as file:
        fortran = _fortran_order(file)
        if int(np.prod(shape, dtype=np.int64)) == 0:
            return np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        flags = mmap.MAP_PRIVATE | (_MAP_NORESERVE if sys.platform.startswith("linux") else 0)
        mapped = mmap.mmap(file.fileno(), 0, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    return np.ndarray(shape, dtype=dtype, buffer=mapped, offset=offset, order="F" if fortran else "C")


def _fortran_order(file) -> bool:
    file.seek(0)
    version = np.lib.format.read_magic(file)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return bool(reader(file)[1])
