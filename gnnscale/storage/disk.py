"""DiskTensor: a 2-D table that stays in a file, for features larger than host memory.

Rows are read on demand with direct I/O (io_uring, or pread on a few threads), in coalesced
block-aligned requests, through an optional host cache with a byte budget. Unlike a memory map
(:meth:`UnifiedTensor.from_npy`), a missing row costs one request among many in flight instead of
a page fault served alone, and the page cache keeps no second copy of the rows.
"""
import threading
import warnings
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from .. import ops
from ..npy import check_npy_size, read_npy_header
from .unified import SUPPORTED_DTYPES


def _torch_dtype(stored: np.dtype, path: Path) -> torch.dtype:
    if stored.hasobject:
        raise ValueError(f"{path} holds Python objects ({stored}), not a numeric table")
    if not stored.isnative:
        raise ValueError(f"{path} holds {stored} in non-native byte order; rewrite it in native order")
    try:
        dtype = torch.from_numpy(np.empty(0, dtype=stored)).dtype
    except TypeError:
        dtype = None
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"{path} holds {stored}; a table on disk must hold one of {SUPPORTED_DTYPES}")
    return dtype


def _is_fortran_order(path: Path) -> bool:
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return read(file)[1]


def _table_shape(shape: Tuple[int, ...], path: Path) -> Tuple[int, int]:
    if len(shape) == 1:  # one value per row, as UnifiedTensor reads it
        return shape[0], 1
    if len(shape) != 2:
        raise ValueError(f"{path} holds an array of shape {shape}; a table on disk must be 1-D or 2-D")
    if shape[1] == 0:
        raise ValueError(f"{path} holds a table of shape {shape}; a table on disk needs at least one column")
    return shape[0], shape[1]


class DiskTensor:
    """A ``[num_rows, width]`` table stored in ``path`` and read by row on demand.

    ``path`` is a ``.npy`` file (C order, 1-D or 2-D, a numeric dtype), or a raw file of rows
    stored back to back from byte ``offset`` (then ``dtype`` and ``shape`` are required and the
    file must hold exactly that table). ``engine`` is "auto" (io_uring where the kernel allows
    it, else pread), "io_uring" or "pread"; ``direct=False`` reads through the page cache.

    ``cache_bytes`` is the budget of the host cache in front of the file: each cached row counts
    its own bytes plus ``stats()["cache_entry_overhead_bytes"]`` (96) bytes of bookkeeping, and
    the cache never holds more than the budget. ``cache_policy`` is "s3fifo", "sieve", "clock"
    or "static"; a static cache holds the rows ``hot_ids`` (e.g. the highest-degree nodes),
    loaded once, and admits nothing else.

    Gathers release the GIL while they read, so loader threads gather concurrently.
    """

    def __init__(self, path, *, cache_bytes: int = 0, engine: str = "auto", dtype: Optional[torch.dtype] = None,
                 shape: Optional[Tuple[int, ...]] = None, offset: int = 0, cache_policy: str = "s3fifo",
                 hot_ids: Optional[torch.Tensor] = None, direct: bool = True):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"feature file {path} does not exist")
        if shape is None:
            if dtype is not None or offset:
                raise ValueError("dtype and offset describe a raw file and need its shape too; "
                                 "a .npy file describes itself")
            num_rows, width, dtype, offset = self._describe_npy(path)
        else:
            num_rows, width, dtype = self._describe_raw(path, shape, dtype, offset)
        if (hot_ids is not None) != (cache_policy == "static"):
            raise ValueError("hot_ids go with cache_policy='static', and a static cache needs hot_ids")
        self.path = path
        self._shape = torch.Size((num_rows, width))
        self._dtype = dtype
        self._offset = offset
        self._engine = engine
        self._direct = direct
        self._per_thread = threading.local()  # pinned staging for GPU destinations
        self._reader = ops.open_disk_table(
            str(path), data_offset=offset, num_rows=num_rows, row_bytes=self.row_bytes, engine=engine,
            direct=direct, cache_bytes=cache_bytes, cache_policy=cache_policy)
        if hot_ids is not None:
            ops.disk_table_load_static(self._reader, torch.as_tensor(hot_ids), num_rows)
        if self.fallback:  # e.g. a container that blocks io_uring: correct, but slower than asked for
            warnings.warn(f"{path}: {self.fallback}", RuntimeWarning, stacklevel=2)

    @staticmethod
    def _describe_npy(path: Path) -> Tuple[int, int, torch.dtype, int]:
        shape, stored, data_offset = read_npy_header(path)
        dtype = _torch_dtype(stored, path)
        if _is_fortran_order(path) and len(shape) > 1:
            raise ValueError(f"{path} is stored in Fortran (column-major) order; rows on disk must be "
                             f"contiguous (save it with np.ascontiguousarray)")
        check_npy_size(path, shape, stored, data_offset)
        num_rows, width = _table_shape(shape, path)
        return num_rows, width, dtype, data_offset

    @staticmethod
    def _describe_raw(path: Path, shape, dtype, offset: int) -> Tuple[int, int, torch.dtype]:
        if dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"a raw file needs its dtype, one of {SUPPORTED_DTYPES}; got {dtype}")
        shape = tuple(int(size) for size in shape)
        if any(size < 0 for size in shape):
            raise ValueError(f"shape must not be negative, got {shape}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative int, got {offset!r}")
        num_rows, width = _table_shape(shape, path)
        expected = offset + num_rows * width * torch.empty(0, dtype=dtype).element_size()
        actual = path.stat().st_size
        if actual != expected:
            raise ValueError(f"{path} is {actual} bytes but {num_rows} x {width} {dtype} from byte {offset} "
                             f"need {expected} ({'truncated' if actual < expected else 'trailing bytes'})")
        return num_rows, width, dtype

    @classmethod
    def with_static_cache(cls, path, hot_ids: torch.Tensor, *, cache_bytes: Optional[int] = None,
                          **options) -> "DiskTensor":
        """A DiskTensor whose cache holds the rows ``hot_ids`` for good; ``cache_bytes`` defaults to
        what they need (their bytes plus the per-row bookkeeping)."""
        hot_ids = torch.as_tensor(hot_ids).unique()
        if cache_bytes is None:
            probe = cls(path, **options)
            cache_bytes = hot_ids.numel() * (probe.row_bytes + probe.stats()["cache_entry_overhead_bytes"])
        return cls(path, cache_bytes=cache_bytes, cache_policy="static", hot_ids=hot_ids, **options)

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> torch.Size:
        return self._shape

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def row_bytes(self) -> int:
        return self._shape[1] * torch.empty(0, dtype=self._dtype).element_size()

    @property
    def nbytes(self) -> int:
        return self._shape[0] * self.row_bytes

    @property
    def is_pinned(self) -> bool:
        return False

    def __len__(self) -> int:
        return self._shape[0]

    def __getitem__(self, index) -> torch.Tensor:
        return self.gather(torch.as_tensor(index).reshape(-1))

    # ------------------------------------------------------------------ gathering
    def gather(self, index: torch.Tensor, *, device: Union[str, torch.device, None] = None,
               out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Rows ``index`` of the table, on ``device`` (the index's device by default)."""
        index = torch.as_tensor(index)
        device = ops.resolve_device(device) if device is not None else index.device
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {device}")
        expected = (index.numel(), self._shape[1])
        if out is None:
            out = torch.empty(expected, dtype=self._dtype, device=device)
        elif tuple(out.shape) != expected or out.dtype != self._dtype or out.device != device:
            raise ValueError(f"out must be a {self._dtype} tensor of shape {expected} on {device}")
        return self.gather_into(index, out)

    def gather_into(self, index: torch.Tensor, out: torch.Tensor,
                    positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Writes row ``index[i]`` into ``out[positions[i]]`` (``out[i]`` without positions), on
        ``out``'s device; what caches and loaders call."""
        index = torch.as_tensor(index)
        if out.dtype != self._dtype or out.dim() != 2 or out.size(1) != self._shape[1]:
            raise ValueError(f"out must be a {self._dtype} tensor of width {self._shape[1]}, got {out.dtype} "
                             f"of shape {tuple(out.shape)}")
        if out.device.type == "cuda":
            return self._gather_through_staging(index, positions, out)
        if not out.is_contiguous():
            raise ValueError("out must be contiguous")
        index = index.cpu()
        positions = None if positions is None else positions.cpu()
        return ops.disk_gather(self._open_reader(), len(self), index, out, positions=positions)

    def _gather_through_staging(self, index, positions, out):
        """CPU gather into a reusable pinned buffer, then a copy to the GPU (as UnifiedTensor does)."""
        count = index.numel()
        local = self._per_thread
        if getattr(local, "staging", None) is None or local.staging.size(0) < count:
            local.staging = torch.empty((max(count, 1024), self._shape[1]), dtype=self._dtype).pin_memory()
        staging = local.staging[:count]
        self.gather_into(index.cpu(), staging)
        if positions is None:
            out[:count].copy_(staging, non_blocking=False)
        else:
            ops.check_index_tensor("positions", positions, out.size(0))
            out[positions.to(out.device)] = staging.to(out.device)
        return out

    # ------------------------------------------------------------------ statistics
    def stats(self) -> Dict[str, object]:
        """Counters since the table was opened: ``bytes_read`` from disk (whole blocks, gaps
        included) and ``bytes_needed`` (the rows' own bytes), ``extents`` and ``reads`` (requests,
        resubmissions included), ``rows_requested`` (duplicates included), ``rows_from_disk`` and
        ``rows_from_cache`` (distinct ids per gather), ``cache_hits`` and ``cache_misses`` (the
        same, as lookups), ``hit_rate``, ``cache_rows``, ``cache_bytes_used``, the ``engine`` in
        use, whether reads are ``direct`` (O_DIRECT, bypassing the page cache) and the
        ``fallback`` taken at opening ("" when none)."""
        stats = ops.disk_table_stats(self._open_reader())
        stats["fallback"] = self.fallback
        lookups = stats["cache_hits"] + stats["cache_misses"]
        stats["rows_from_cache"] = stats["cache_hits"]
        stats["hit_rate"] = stats["cache_hits"] / lookups if lookups else 0.0
        return stats

    @property
    def engine(self) -> str:
        return self._open_reader().engine()

    @property
    def direct(self) -> bool:
        return bool(self._open_reader().direct())

    @property
    def fallback(self) -> str:
        """What the reader fell back to when opened and why: the filesystem refused O_DIRECT, or
        the kernel refused io_uring ("" when it runs as asked)."""
        return str(self._open_reader().fallback_note())

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Closes the file and frees the cache now rather than when the table is collected; the
        table reads nothing afterwards."""
        self._reader = None

    @property
    def closed(self) -> bool:
        return self._reader is None

    def _open_reader(self):
        if self._reader is None:
            raise ValueError(f"the DiskTensor of {self.path} is closed")
        return self._reader

    def __repr__(self) -> str:
        if self.closed:
            return f"DiskTensor({str(self.path)!r}, shape={tuple(self.shape)}, dtype={self.dtype}, closed)"
        return (f"DiskTensor({str(self.path)!r}, shape={tuple(self.shape)}, dtype={self.dtype}, engine={self.engine}, "
                f"direct={self.direct})")
