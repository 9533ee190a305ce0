"""FeatureCache: the rows of frequently used nodes kept on the GPU (or any device), so that a
gather moves only the misses over PCIe. The rows are chosen once (by degree, by pre-sampling) or
follow the access stream under CLOCK, batched so that a gather's admissions are a few tensor
operations on the device rather than a loop per row."""
from typing import Optional, Union

import torch

from .. import ops
from .disk import DiskTensor
from .unified import UnifiedTensor


def _as_source(source) -> Union[UnifiedTensor, DiskTensor]:
    """The table a cache fills from and sends its misses to: a host table (a tensor is wrapped
    without a copy) or a table on disk."""
    return source if isinstance(source, (UnifiedTensor, DiskTensor)) else UnifiedTensor(source)


POLICIES = ("static", "clock")


class FeatureCache:
    """Caches ``source[hot_ids]`` on ``device``. ``gather(index)`` serves cached rows from there
    and the rest through ``source`` (zero-copy or staged), and counts hits.

    Choose the hot rows with :meth:`by_degree` (high in-degree nodes are sampled most) or
    :meth:`by_presampling` (count how often a sampler actually visits each node), or let them
    follow the access stream with :meth:`dynamic` (CLOCK).

    CLOCK, per gather: every hit sets its slot's reference bit; then each distinct miss (up to the
    cache's size; an even spread of them when there are more) takes a slot, the first ones whose
    bit is clear going round from a hand, the bits of the slots it passes cleared, no slot taken
    twice in one gather. An admitted row starts with its bit clear, so a row used once leaves at
    the hand's next pass (as in the host cache's CLOCK). Misses are copied in from the gather's
    own output: the source is read once per miss.
    """

    def __init__(self, source: Union[UnifiedTensor, DiskTensor], hot_ids: torch.Tensor,
                 device: Union[str, torch.device] = "cuda", *, policy: str = "static",
                 capacity: Optional[int] = None):
        """``policy``: "static" (the rows of ``hot_ids``, fixed) or "clock" (``capacity`` rows, the
        first filled with ``hot_ids``' rows, then following the stream)."""
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        source = _as_source(source)
        self.source, self.policy = source, policy
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
        # Slot -> node id (-1: empty), the reference bits and the hand, for CLOCK.
        self.owner = torch.full((capacity,), -1, dtype=torch.int64, device=self.device)
        self.owner[:hot_ids.numel()] = hot_ids.to(self.device)
        self.referenced = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.hand = 0
        self.requests = 0
        self.hits = 0
        self.admitted = 0

    @classmethod
    def dynamic(cls, source: Union[UnifiedTensor, DiskTensor], budget_bytes: int, device="cuda",
                warm_ids: Optional[torch.Tensor] = None) -> "FeatureCache":
        """A CLOCK cache of as many rows as fit in ``budget_bytes``, empty or first holding the rows
        of ``warm_ids`` (at most that many, e.g. the highest-degree nodes)."""
        source = _as_source(source)
        capacity = cls.rows_for_budget(source, budget_bytes)
        warm = torch.empty(0, dtype=torch.int64) if warm_ids is None else torch.as_tensor(warm_ids, dtype=torch.int64)
        return cls(source, warm.unique()[:capacity], device, policy="clock", capacity=capacity)

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
        if self.policy == "clock" and self.capacity:
            self.referenced[slot[hit_positions].long()] = True
            if miss_positions.numel():
                self._admit(index[miss_positions], out, miss_positions)
        return out

    def _admit(self, missed: torch.Tensor, out: torch.Tensor, miss_positions: torch.Tensor) -> None:
        """CLOCK's admission of one gather's misses (see the class's docstring)."""
        ids, inverse = torch.unique(missed, return_inverse=True)
        first = torch.empty(ids.numel(), dtype=torch.int64, device=self.device)
        first.scatter_(0, inverse, torch.arange(missed.numel(), device=self.device))  # any copy: rows are equal
        if ids.numel() > self.capacity:
            keep = torch.arange(self.capacity, device=self.device) * ids.numel() // self.capacity
            ids, first = ids[keep], first[keep]
        victims = self._sweep(ids.numel())
        evicted = self.owner[victims]
        self.slot[evicted[evicted >= 0]] = -1
        self.owner[victims] = ids
        self.slot[ids] = victims.to(torch.int32)
        self.referenced[victims] = False
        self.rows[victims] = out[miss_positions[first]]
        self.admitted += ids.numel()

    def _sweep(self, count: int) -> torch.Tensor:
        """The next ``count`` slots whose reference bit is clear, going round from the hand and
        clearing the bits it passes; a second round (every bit then clear) takes the slots the
        first passed over."""
        order = torch.arange(self.hand, self.hand + self.capacity, device=self.device) % self.capacity
        clear = ~self.referenced[order]
        first_round = torch.nonzero(clear).flatten()
        if first_round.numel() >= count:
            taken = first_round[:count]
            self.referenced[order[:int(taken[-1]) + 1]] = False
        else:
            second_round = torch.nonzero(~clear).flatten()[:count - first_round.numel()]
            taken = torch.cat([first_round, second_round])
            self.referenced.zero_()
        self.hand = (self.hand + int(taken[-1]) + 1) % self.capacity
        return order[taken]
