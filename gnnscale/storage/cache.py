"""FeatureCache: the rows of frequently used nodes kept on the GPU (or any device), so that a
gather moves only the misses over PCIe. The rows are chosen once (by degree, by pre-sampling) or
follow the access stream by decayed frequency, refreshed every few gathers with a handful of
tensor operations on the device."""
from typing import Optional, Union

import torch

from .. import ops
from .disk import DiskTensor
from .unified import UnifiedTensor


def _as_source(source) -> Union[UnifiedTensor, DiskTensor]:
    """The table a cache fills from and sends its misses to: a host table (a tensor is wrapped
    without a copy) or a table on disk."""
    return source if isinstance(source, (UnifiedTensor, DiskTensor)) else UnifiedTensor(source)


POLICIES = ("static", "frequency")


class FeatureCache:
    """Caches ``source[hot_ids]`` on ``device``. ``gather(index)`` serves cached rows from there
    and the rest through ``source`` (zero-copy or staged), and counts hits.

    Choose the hot rows with :meth:`by_degree` (high in-degree nodes are sampled most) or
    :meth:`by_presampling` (count how often a sampler actually visits each node), or let them
    follow the access stream with :meth:`dynamic`.

    The "frequency" policy of :meth:`dynamic` counts every request per node; every
    ``refresh_every`` gathers the cache takes the rows of the most requested nodes that fit (ties
    to the lower id), reading only those it lacks from the source, and halves every count, so
    that the counts follow the recent stream. A mini-batch's distinct rows often outnumber the
    cache: admitting each miss (CLOCK, LRU) would then replace the cache every gather with rows
    of one batch, while counts keep the rows that batch after batch ask for.
    """

    def __init__(self, source: Union[UnifiedTensor, DiskTensor], hot_ids: torch.Tensor,
                 device: Union[str, torch.device] = "cuda", *, policy: str = "static",
                 capacity: Optional[int] = None, refresh_every: int = 8):
        """``policy``: "static" (the rows of ``hot_ids``, fixed) or "frequency" (``capacity`` rows,
        first those of ``hot_ids``, then following the stream; see the class)."""
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if isinstance(refresh_every, bool) or not isinstance(refresh_every, int) or refresh_every < 1:
            raise ValueError(f"refresh_every must be a positive int of gathers, got {refresh_every!r}")
        source = _as_source(source)
        self.source, self.policy, self.refresh_every = source, policy, refresh_every
        self.device = ops.check_device(device)
        hot_ids = torch.as_tensor(hot_ids, dtype=torch.int64).unique()
        if hot_ids.numel() and (int(hot_ids.min()) < 0 or int(hot_ids.max()) >= len(source)):
            raise ValueError(f"hot_ids must lie in [0, {len(source)})")
        capacity = hot_ids.numel() if capacity is None else capacity
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < hot_ids.numel():
            raise ValueError(f"capacity must be an int of at least the {hot_ids.numel()} hot_ids, got {capacity!r}")
        if policy == "static" and capacity != hot_ids.numel():
            raise ValueError("a static cache holds exactly its hot_ids: leave capacity unset")
        self.rows = torch.empty((capacity, *source.shape[1:]), dtype=source.dtype, device=self.device)
        self.rows[:hot_ids.numel()] = source.gather(hot_ids, device=self.device)
        # Node id -> cache slot (-1: not cached); int32 halves the table's size.
        self.slot = torch.full((len(source),), -1, dtype=torch.int32, device=self.device)
        self.slot[hot_ids.to(self.device)] = torch.arange(hot_ids.numel(), dtype=torch.int32, device=self.device)
        self.owner = torch.full((capacity,), -1, dtype=torch.int64, device=self.device)  # slot -> node (-1: empty)
        self.owner[:hot_ids.numel()] = hot_ids.to(self.device)
        dynamic = policy == "frequency" and capacity > 0
        self.counts = torch.zeros(len(source) if dynamic else 0, dtype=torch.int32, device=self.device)
        self.gathers = 0
        self.requests = 0
        self.hits = 0
        self.refreshed_rows = 0  # rows read from the source by refreshes (beyond the misses)

    @classmethod
    def dynamic(cls, source: Union[UnifiedTensor, DiskTensor], budget_bytes: int, device="cuda",
                warm_ids: Optional[torch.Tensor] = None, refresh_every: int = 8) -> "FeatureCache":
        """A cache of as many rows as fit in ``budget_bytes`` under the "frequency" policy, empty
        or first holding the rows of ``warm_ids`` (at most that many, e.g. the highest-degree
        nodes), refreshed every ``refresh_every`` gathers."""
        source = _as_source(source)
        capacity = cls.rows_for_budget(source, budget_bytes)
        warm = torch.empty(0, dtype=torch.int64) if warm_ids is None else torch.as_tensor(warm_ids, dtype=torch.int64)
        return cls(source, warm.unique()[:capacity], device, policy="frequency", capacity=capacity,
                   refresh_every=refresh_every)

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
    def capacity(self) -> int:
        return self.rows.size(0)

    @property
    def num_cached(self) -> int:
        return int((self.owner >= 0).sum())

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
        if self.counts.numel():
            self.counts.index_add_(0, index, torch.ones_like(index, dtype=torch.int32))
            self.gathers += 1
            if self.gathers % self.refresh_every == 0:
                self._refresh()
        return out

    def _refresh(self) -> None:
        """Holds the rows of the ``capacity`` most requested nodes (ties to the lower id), then
        halves the counts."""
        num_nodes = self.counts.numel()
        # One key per node, unique, so that ties break the same way on every device.
        key = self.counts.to(torch.int64) * num_nodes + (num_nodes - 1 - torch.arange(num_nodes, device=self.device))
        hot = torch.topk(key, min(self.capacity, num_nodes)).indices
        hot = hot[self.counts[hot] > 0]
        cached = self.slot[hot] >= 0
        staying = torch.zeros(self.capacity, dtype=torch.bool, device=self.device)
        staying[self.slot[hot[cached]].long()] = True
        leaving = self.owner[~staying]
        self.slot[leaving[leaving >= 0]] = -1
        self.owner[~staying] = -1
        incoming = hot[~cached]
        free = torch.nonzero(~staying).flatten()[:incoming.numel()]
        self.owner[free] = incoming
        self.slot[incoming] = free.to(torch.int32)
        if incoming.numel():
            self.rows[free] = self.source.gather(incoming, device=self.device)
        self.refreshed_rows += incoming.numel()
        self.counts >>= 1
