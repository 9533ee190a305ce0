"""Temporal neighbour sampling: for each (node, time) query, the k most recent earlier events of the
node, or k of them uniformly at random (the C++ kernel, parallel over queries)."""
from dataclasses import dataclass
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


class TemporalNeighborSampler:
    """Samples from a :class:`~gnnscale.temporal_graph.TemporalGraph` (re-reading its index, so
    events appended to the graph become visible). ``strategy='recent'`` (TGN's default) or
    ``'uniform'``; uniform draws are reproducible given ``seed`` and the query order."""

    def __init__(self, graph: TemporalGraph, k: int = 10, strategy: str = "recent", seed: int = 0):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.graph, self.k, self.strategy, self.seed = graph, k, strategy, seed

    def sample(self, nodes: torch.Tensor, times: torch.Tensor, *, before_event: Optional[torch.Tensor] = None,
               round: int = 0) -> TemporalNeighbors:
        """Neighbours of ``nodes[i]`` through events strictly before ``times[i]`` and, when
        ``before_event`` is given, with event ids below ``before_event[i]``. ``round`` varies the
        uniform draws between calls (e.g. the batch number)."""
        csr = self.graph.csr()
        nodes = torch.as_tensor(nodes)
        ops.check_index_tensor("nodes", nodes, self.graph.num_nodes)
        neighbors, edge_ids, edge_times = ops.temporal_neighbor_sample(
            csr.indptr, csr.neighbors, csr.edge_ids, csr.edge_times, nodes, times, self.k,
            event_limit=before_event, most_recent=self.strategy == "recent", seed=self.seed * 1_000_003 + round)
        return TemporalNeighbors(neighbors, edge_ids, edge_times)
