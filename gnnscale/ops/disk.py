"""Rows of a table stored in a file, read by id: the C++ reader (io_uring or pread, O_DIRECT,
coalesced block reads) and the host row cache in front of it (csrc/cpu/disk_io.h)."""
from typing import Dict, Optional

import torch

from . import kernels
from .checks import check_index_tensor

DISK_ENGINES = ("auto", "io_uring", "pread")
CACHE_POLICIES = ("s3fifo", "sieve", "clock", "static")


def open_disk_table(path: str, *, data_offset: int, num_rows: int, row_bytes: int, engine: str = "auto",
                    direct: bool = True, cache_bytes: int = 0, cache_policy: str = "s3fifo"):
    """A reader of ``num_rows`` rows of ``row_bytes`` bytes stored from byte ``data_offset`` of
    ``path``, with a host cache of at most ``cache_bytes`` bytes (0: none)."""
    if engine not in DISK_ENGINES:
        raise ValueError(f"engine must be one of {DISK_ENGINES}, got {engine!r}")
    if cache_policy not in CACHE_POLICIES:
        raise ValueError(f"cache_policy must be one of {CACHE_POLICIES}, got {cache_policy!r}")
    if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int) or cache_bytes < 0:
        raise ValueError(f"cache_bytes must be a non-negative int, got {cache_bytes!r}")
    return torch.classes.gnnscale.DiskTable(str(path), int(data_offset), int(num_rows), int(row_bytes), engine,
                                            bool(direct), cache_bytes, cache_policy)


def disk_gather(table, num_rows: int, index: torch.Tensor, out: torch.Tensor,
                positions: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``out[positions[i]] = row index[i]`` (``out[i]`` without positions) of a disk table of
    ``num_rows`` rows, on the CPU, without holding the GIL while it reads."""
    check_index_tensor("index", index, num_rows)
    if positions is not None:
        check_index_tensor("positions", positions, out.size(0))
        positions = positions.to(torch.int64).contiguous()
    elif out.size(0) < index.numel():
        raise ValueError(f"out has {out.size(0)} rows, fewer than the {index.numel()} ids")
    kernels.OPS.disk_gather(table, index.to(torch.int64).contiguous(), positions, out)
    return out


def disk_table_load_static(table, hot_ids: torch.Tensor, num_rows: int) -> int:
    """Reads rows ``hot_ids`` once into the table's static cache; returns how many it holds."""
    check_index_tensor("hot_ids", hot_ids, num_rows)
    return int(table.load_static(hot_ids.to(torch.int64).contiguous()))


def disk_table_stats(table) -> Dict[str, object]:
    """The reader's counters, its engine and whether its reads bypass the page cache."""
    stats: Dict[str, object] = dict(table.stats())
    stats["direct"] = bool(stats["direct"])
    stats["engine"] = table.engine()
    stats["fallback_note"] = table.fallback_note()
    return stats
