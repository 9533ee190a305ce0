"""Random walks over a :class:`Graph` for node embedding: DeepWalk (uniform or weighted) and
node2vec (second-order, by rejection in C++), plus LINE's weighted edge draws."""
from typing import Optional

import torch

from .. import ops
from ..graph import Graph


class RandomWalker:
    """Walks of ``length`` nodes from given start nodes.

        walker = RandomWalker(graph, length=80, p=1.0, q=1.0)
        walks = walker.walk(starts, seed=0)     # [len(starts), 80], -1 after a dead end

    ``weighted=True`` steps in proportion to ``graph.edge_weight``. ``p`` (return) and ``q``
    (in-out) other than 1 give node2vec's biased walk without per-edge tables.
    """

    def __init__(self, graph: Graph, length: int, *, p: float = 1.0, q: float = 1.0, weighted: bool = False):
        if graph.num_edges == 0:
            raise ValueError("the graph has no edges to walk on")
        if weighted and graph.edge_weight is None:
            raise ValueError("weighted walks need a graph with edge weights")
        self.graph, self.length, self.p, self.q = graph, length, p, q
        self.cumulative_weight = (torch.cumsum(graph.edge_weight.to(torch.float64), 0) if weighted else None)
        if self.cumulative_weight is not None and bool((graph.edge_weight <= 0).any()):
            raise ValueError("weighted walks need positive edge weights")

    def walk(self, starts: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
        return ops.random_walk(self.graph.indptr, self.graph.indices, starts, self.length,
                               cumulative_weight=self.cumulative_weight, p=self.p, q=self.q, seed=seed)


def walk_starts(num_nodes: int, num_walks: int, *, seed: int = 0, nodes: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``num_walks`` rounds over the nodes (or ``nodes``), each round in its own random order."""
    nodes = torch.arange(num_nodes) if nodes is None else nodes
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([nodes[torch.randperm(nodes.numel(), generator=gen)] for _ in range(num_walks)])


class EdgeDrawer:
    """LINE's edge sampling: edges drawn in proportion to their weight (uniformly when the graph
    has none) from a C++ alias table, returned as ``[count, 2]`` (source, target) pairs."""

    def __init__(self, graph: Graph):
        if graph.num_edges == 0:
            raise ValueError("the graph has no edges to sample")
        self.graph = graph
        weight = graph.edge_weight if graph.edge_weight is not None else torch.ones(graph.num_edges)
        self.table = ops.alias_table(weight.to(torch.float64))
        self.source = graph.row()

    def draw(self, count: int, *, seed: int = 0) -> torch.Tensor:
        edges = ops.alias_sample(*self.table, count, seed=seed)
        return torch.stack([self.source[edges], self.graph.indices[edges].to(torch.int64)], dim=1)
