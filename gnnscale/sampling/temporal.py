"""Temporal neighbour sampling: for each (node, time) query, the k most recent earlier events of the
node, or k of them uniformly at random (the C++ kernel, parallel over queries); and the
neighbourhood of a set of queries as a memory-based embedding reads it (distinct nodes, rows,
time gaps, edge features)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import torch

from .. import ops
from ..temporal_graph import TemporalGraph

STRATEGIES = ("recent", "uniform")


@dataclass
class TemporalNeighbors:
    """``[num_queries, k]`` neighbours, the events linking them and the events' times, in
    chronological order; ``mask`` is False on padding (then node and event are -1)."""

    nodes: torch.Tensor
    edge_ids: torch.Tensor
    times: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        return self.nodes >= 0


@dataclass
class TemporalNeighborhood:
    """Queries ``(node, time)`` as an embedding reads them. ``nodes``: the distinct nodes whose
    memory is read (the queries' and their neighbours'), sorted; ``query_rows[i]``: the row of
    query i in ``nodes``; ``query_times``. With sampled neighbours, per query and slot
    (``[Q, k]``): ``neighbor_rows`` (rows in ``nodes``, 0 on padding), ``mask`` (False on
    padding), ``edge_ids`` (-1 on padding), ``dt`` (query time minus the event's, 0 on padding)
    and ``edge_features`` (``[Q, k, dim]``, zero on padding; None when the events carry none).
    Without (JODIE reads only the queries' own memory) those are None."""

    nodes: torch.Tensor
    query_rows: torch.Tensor
    query_times: torch.Tensor
    neighbor_rows: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None
    edge_ids: Optional[torch.Tensor] = None
    dt: Optional[torch.Tensor] = None
    edge_features: Optional[torch.Tensor] = None

    @property
    def has_neighbors(self) -> bool:
        return self.mask is not None

    @classmethod
    def of_queries(cls, nodes: torch.Tensor, times: torch.Tensor) -> "TemporalNeighborhood":
        """The queries alone, without neighbours."""
        unique, inverse = torch.unique(nodes, return_inverse=True)
        return cls(unique, inverse, torch.as_tensor(times, dtype=torch.float64))

    def to(self, device, non_blocking: bool = False) -> "TemporalNeighborhood":
        """A copy with every tensor but ``nodes`` on ``device``: ``nodes`` index the memory
        state, which stays where it lives (possibly host memory)."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if name != "nodes" and value is not None:
                moved[name] = value.to(device, non_blocking=non_blocking)
        return TemporalNeighborhood(**moved)


class TemporalNeighborSampler:
    """Samples from a :class:`~gnnscale.temporal_graph.TemporalGraph` (re-reading its index, so
    events appended to the graph become visible). ``strategy='recent'`` (TGN's default) or
    ``'uniform'``; uniform draws are reproducible given the seed and the query order."""

    def __init__(self, graph: TemporalGraph, k: int = 10, strategy: str = "recent", seed: int = 0):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.graph, self.k, self.strategy, self.seed = graph, k, strategy, seed

    def sample(self, nodes: torch.Tensor, times: torch.Tensor, *, before_event: Optional[torch.Tensor] = None,
               seed: Optional[int] = None) -> TemporalNeighbors:
        """Neighbours of ``nodes[i]`` through events strictly before ``times[i]`` and, when
        ``before_event`` is given, with event ids below ``before_event[i]``. ``seed`` (default:
        the sampler's) fixes the uniform draws of this call (a loader mixes it per batch)."""
        csr = self.graph.csr()
        nodes = torch.as_tensor(nodes)
        ops.check_index_tensor("nodes", nodes, self.graph.num_nodes)
        neighbors, edge_ids, edge_times = ops.temporal_neighbor_sample(
            csr.indptr, csr.neighbors, csr.edge_ids, csr.edge_times, nodes, times, self.k,
            event_limit=before_event, most_recent=self.strategy == "recent",
            seed=self.seed if seed is None else seed)
        return TemporalNeighbors(neighbors, edge_ids, edge_times)

    def neighborhood(self, nodes: torch.Tensor, times: torch.Tensor, *, before_event: Optional[torch.Tensor] = None,
                     seed: Optional[int] = None) -> TemporalNeighborhood:
        """:meth:`sample`, then the distinct nodes, rows, time gaps and edge features of the result."""
        nodes = torch.as_tensor(nodes)
        times = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
        neighbors = self.sample(nodes, times, before_event=before_event, seed=seed)
        mask = neighbors.mask
        unique, inverse = torch.unique(torch.cat([nodes, neighbors.nodes[mask]]), return_inverse=True)
        count = nodes.numel()
        neighbor_rows = torch.zeros(mask.shape, dtype=torch.int64)
        neighbor_rows[mask] = inverse[count:]
        dt = (times.unsqueeze(1) - neighbors.times).masked_fill(~mask, 0)
        edge_features = None
        if self.graph.edge_features is not None:
            edge_features = self.graph.edge_features[neighbors.edge_ids.clamp_min(0)] * mask.unsqueeze(2)
        return TemporalNeighborhood(unique, inverse[:count], times, neighbor_rows, mask, neighbors.edge_ids, dt,
                                    edge_features)
