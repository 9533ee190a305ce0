"""Starting ranks: under ``torchrun`` (environment variables), or as local processes from Python."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, List

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def init_from_environment(backend: str = "gloo") -> None:
    """Joins the process group that ``torchrun`` described in RANK / WORLD_SIZE / MASTER_ADDR."""
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError(f"not started by torchrun: {', '.join(missing)} unset "
                         f"(use `torchrun --nproc-per-node N -m gnnscale.parallel ...` or `gnnscale pipe --nproc N`)")
    dist.init_process_group(backend)


def _entry(rank: int, world_size: int, store: str, threads: int, function: Callable, args: tuple,
           results: str) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        value = function(*args)
        torch.save(value, Path(results) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def spawn(world_size: int, function: Callable, *args: Any, threads_per_rank: int = 1) -> List[Any]:
    """Runs ``function(*args)`` on ``world_size`` local gloo ranks; returns each rank's return value.
    ``function`` must be importable by name (defined at module level)."""
    if world_size < 1:
        raise ValueError(f"world_size must be positive, got {world_size}")
    with tempfile.TemporaryDirectory(prefix="gnnscale-spawn-") as folder:
        store = os.path.join(folder, "store")
        mp.spawn(_entry, args=(world_size, store, threads_per_rank, function, args, folder), nprocs=world_size,
                 join=True)
        return [torch.load(Path(folder) / f"rank{rank}.pt", weights_only=False) for rank in range(world_size)]
