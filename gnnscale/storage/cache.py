"""FeatureCache: the rows of frequently used nodes kept on the GPU (or any device), so that a
gather moves only the misses over PCIe."""
from typing import Optional, Union

import torch

from .. import ops
from .disk import DiskTensor
from .unified import UnifiedTensor


def _as_source(source) -> Union[UnifiedTensor, DiskTensor]:
    """The table a cache fills from and sends its misses to: a host table (a tensor is wrapped
    without a copy) or a table on disk."""
    return source if isinstance(source, (UnifiedTensor, DiskTensor)) else UnifiedTensor(source)


class FeatureCache:
    """Caches ``source[hot_ids]`` on ``device``. ``gather(index)`` serves cached rows from there
    and the rest through ``source`` (zero-copy or staged), and counts hits.

    Choose the hot rows with :meth:`by_degree` (high in-degree nodes are sampled most) or
    :meth:`by_presampling` (count how often a sampler actually visits each node).
    """

    def __init__(self, source: Union[UnifiedTensor, DiskTensor], hot_ids: torch.Tensor,
                 device: Union[str, torch.device] = "cuda"):
        source = _as_source(source)
        self.source = source
        self.device = ops.check_device(device)
        hot_ids = torch.as_tensor(hot_ids, dtype=torch.int64).unique()
        if hot_ids.numel() and (int(hot_ids.min()) < 0 or int(hot_ids.max()) >= len(source)):
            raise ValueError(f"hot_ids must lie in [0, {len(source)})")
        self.rows = source.gather(hot_ids, device=self.device)
        # Node id -> cache slot (-1: not cached); int32 halves the table's size.
        self.slot = torch.full((len(source),), -1, dtype=torch.int32, device=self.device)
        self.slot[hot_ids.to(self.device)] = torch.arange(hot_ids.numel(), dtype=torch.int32, device=self.device)
        self.requests = 0
        self.hits = 0

    @staticmethod
    def rows_for_budget(source: UnifiedTensor, budget_bytes: int) -> int:
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be non-negative, got {budget_bytes}")
        return min(len(source), budget_bytes // max(source.row_bytes, 1))

    @classmethod
    def by_degree(cls, source: UnifiedTensor, graph, budget_bytes: int, device="cuda") -> "FeatureCache":
        """Caches the highest in-degree nodes that fit in ``budget_bytes``."""
        source = _as_source(source)
        count = cls.rows_for_budget(source, budget_bytes)
        hot = torch.topk(graph.degree("in"), count).indices if count else torch.empty(0, dtype=torch.int64)
        return cls(source, hot, device)

    @classmethod
    def by_presampling(cls, source: UnifiedTensor, sampler, seeds: torch.Tensor, budget_bytes: int,
                       device="cuda", batch_size: int = 1024, num_batches: int = 8, seed: int = 0) -> "FeatureCache":
        """Runs ``num_batches`` sampling passes over random seed batches and caches the nodes
        sampled most often that fit in ``budget_bytes``."""
        source = _as_source(source)
        gen = torch.Generator().manual_seed(seed)
        visits = torch.zeros(len(source), dtype=torch.int64)
        seeds = torch.as_tensor(seeds)
        for b in range(num_batches):
            batch = seeds[torch.randperm(seeds.numel(), generator=gen)[:batch_size]]
            visited = sampler.sample(batch, seed=seed + b).node.cpu()
            visits.index_add_(0, visited, torch.ones_like(visited))
        count = min(cls.rows_for_budget(source, budget_bytes), int((visits > 0).sum()))
        hot = torch.topk(visits, count).indices if count else torch.empty(0, dtype=torch.int64)
        return cls(source, hot, device)

    @property
    def num_cached(self) -> int:
        return self.rows.size(0)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    def __len__(self) -> int:
        return len(self.source)

    @property
    def shape(self):
        return self.source.shape

    def gather(self, index: torch.Tensor, *, device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
        """``source[index]`` on the cache's device (``device`` must be that device if given)."""
        if device is not None and ops.resolve_device(device) != self.device:
            raise ValueError(f"this cache serves {self.device}, not {device}")
        index = torch.as_tensor(index)
        # Checked where the ids are (one min/max): a negative id would read the slot table from its end.
        ops.check_index_tensor("index", index, len(self))
        index = index.to(self.device)
        out = torch.empty((index.numel(), self.rows.size(1)), dtype=self.rows.dtype, device=self.device)
        slot = self.slot[index]
        hit = slot >= 0
        hit_positions = torch.nonzero(hit).flatten()
        miss_positions = torch.nonzero(~hit).flatten()
        if hit_positions.numel():
            out[hit_positions] = self.rows[slot[hit_positions].long()]
        if miss_positions.numel():
            self.source.gather_into(index[miss_positions], out, positions=miss_positions)
        self.requests += index.numel()
        self.hits += hit_positions.numel()
        return out
