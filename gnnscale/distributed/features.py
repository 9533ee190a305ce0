"""The feature table of a graph split into parts: the rows of owned nodes are read from this
machine's part, the others fetched from their owners in one batched request per gather and
owner, with a cache of hot remote rows sized by a byte budget.

Every rank calls :meth:`DistributedFeatures.gather` the same number of times (a gather's
requests and answers are collectives), as the ranks of a data-parallel job take their batches.
"""
from typing import Dict, Optional

import torch

from ..storage import UnifiedTensor
from .exchange import exchange, group_rank, group_size, grouped_by
from .partition import GraphPart

POLICIES = ("references", "none")


class DistributedFeatures:
    """``gather(ids)`` gives the feature rows of any nodes (new ids of ``part``'s partition).

    The remote-row cache holds ``cache_bytes`` of rows of other parts' nodes, chosen once: the
    ``hot_ids`` given (pre-sampling finds those a sampler reaches most, over every hop), else with
    ``policy="references"`` the halo nodes this part's edges reach most often (one hop only),
    ``"none"`` for no cache. ``stats()``
    reports local rows, cache hits and the rows and bytes fetched from other machines."""

    def __init__(self, part: GraphPart, *, local: Optional[torch.Tensor] = None, group=None, cache_bytes: int = 0,
                 policy: str = "references", hot_ids: Optional[torch.Tensor] = None):
        """``local``: the rows of this part's nodes (default: its features), e.g. one layer's
        outputs in layer-wise evaluation. ``hot_ids``: the remote nodes to cache, hottest first
        (e.g. by pre-sampling: :func:`presampled_hot_ids`), instead of ``policy``'s."""
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int) or cache_bytes < 0:
            raise ValueError(f"cache_bytes must be a non-negative int, got {cache_bytes!r}")
        local = part.features if local is None else local
        if local.dim() != 2 or local.size(0) != part.num_owned:
            raise ValueError(f"local must hold one row per node of part {part.part} ({part.num_owned}), "
                             f"got shape {tuple(local.shape)}")
        self.part, self.group, self.table = part, group, local
        self.world_size = group_size(group)
        if self.world_size != part.num_parts or group_rank(group) != part.part:
            raise ValueError(f"rank {group_rank(group)} of {self.world_size} must hold part {group_rank(group)} "
                             f"of a partition into as many parts, not part {part.part} of {part.num_parts}")
        self.local = UnifiedTensor(local)
        self.row_bytes = self.local.row_bytes
        self.cache_ids = torch.empty(0, dtype=torch.int64)
        self.cache_rows = local.new_empty((0, local.size(1)))
        self.counts = {"requests": 0, "local": 0, "cache_hits": 0, "fetched": 0, "served": 0}
        candidates = part.halo if hot_ids is None else torch.as_tensor(hot_ids, dtype=torch.int64)
        if hot_ids is not None and candidates.numel() and bool(((candidates >= part.first) & (candidates < part.stop)).any()):
            raise ValueError("hot_ids must be other parts' nodes: this part's rows are local already")
        count = min(candidates.numel(), cache_bytes // max(1, self.row_bytes)) if policy == "references" else 0
        # Filling the cache is itself a gather on every rank (its collectives must line up).
        hot = torch.sort(candidates[:count].to(torch.int64)).values
        self.cache_rows = self._fetch(hot)
        self.cache_ids = hot
        self.counts = dict.fromkeys(self.counts, 0)

    @property
    def shape(self):
        return torch.Size((self.part.num_nodes, self.table.size(1)))

    @property
    def dtype(self) -> torch.dtype:
        return self.table.dtype

    def __len__(self) -> int:
        return self.part.num_nodes

    def gather(self, ids: torch.Tensor, *, device=None) -> torch.Tensor:
        """The rows of ``ids`` (in order, duplicates allowed), on ``device`` (default: the CPU)."""
        out = self._fetch(torch.as_tensor(ids, dtype=torch.int64))
        return out if device is None else out.to(device)

    def _fetch(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 1 or (ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.part.num_nodes)):
            raise ValueError(f"ids must be a 1-D tensor of node ids in [0, {self.part.num_nodes})")
        out = self.table.new_empty((ids.numel(), self.table.size(1)))
        owned = (ids >= self.part.first) & (ids < self.part.stop)
        where = torch.nonzero(owned).flatten()
        if where.numel():
            out[where] = self.local.gather(ids[where] - self.part.first)
        remote = torch.nonzero(~owned).flatten()
        slot = torch.searchsorted(self.cache_ids, ids[remote]).clamp_(max=max(0, self.cache_ids.numel() - 1))
        cached = (self.cache_ids[slot] == ids[remote]) if self.cache_ids.numel() else torch.zeros_like(remote, dtype=torch.bool)
        out[remote[cached]] = self.cache_rows[slot[cached]]
        missing = remote[~cached]
        wanted, inverse = torch.unique(ids[missing], return_inverse=True)
        order, counts = grouped_by(self.part.owner_of(wanted), self.world_size)
        asked, asked_counts = exchange(wanted[order], counts, self.group)
        rows = self.local.gather(asked - self.part.first) if asked.numel() else out.new_empty((0, out.size(1)))
        answers, _ = exchange(rows, torch.tensor(asked_counts), self.group, incoming=counts.tolist())
        fetched = torch.empty_like(answers)
        fetched[order] = answers
        out[missing] = fetched[inverse]
        self.counts["requests"] += ids.numel()
        self.counts["local"] += where.numel()
        self.counts["cache_hits"] += int(cached.sum())
        self.counts["fetched"] += wanted.numel()
        self.counts["served"] += asked.numel()
        return out

    def stats(self) -> Dict[str, float]:
        remote = self.counts["requests"] - self.counts["local"]
        return {**self.counts, "cached_rows": self.cache_ids.numel(),
                "cache_hit_rate": self.counts["cache_hits"] / remote if remote else 0.0,
                "fetched_bytes": self.counts["fetched"] * self.row_bytes}


def presampled_hot_ids(sampler, seeds: torch.Tensor, *, batch_size: int, num_batches: int = 8,
                       seed: int = 0) -> torch.Tensor:
    """The other parts' nodes that ``num_batches`` samples around random batches of ``seeds``
    (this rank's training nodes) reach, most often reached first (GNNLab's pre-sampling, over
    the parts). Every rank calls it with the same ``num_batches``: the samples are collectives."""
    part = sampler.part
    visits = torch.zeros(part.num_nodes, dtype=torch.int32)
    gen = torch.Generator().manual_seed(seed)
    for b in range(num_batches):
        batch = seeds[torch.randperm(seeds.numel(), generator=gen)[:batch_size]]
        nodes = sampler.sample(batch, seed=seed + b).node
        visits.index_add_(0, nodes, torch.ones_like(nodes, dtype=torch.int32))
    visits[part.first:part.stop] = 0
    reached = torch.nonzero(visits).flatten()
    order = torch.argsort(visits[reached].to(torch.int64) * part.num_nodes + (part.num_nodes - 1 - reached),
                          descending=True)
    return reached[order]
