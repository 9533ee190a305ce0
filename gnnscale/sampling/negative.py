"""Negative sampling for link prediction: uniform or degree^power (alias table, built in C++),
over all nodes or over a candidate set (e.g. the destinations of a bipartite stream)."""
from typing import Optional

import torch

from .. import ops
from ..graph import Graph
from .neighbor import mix_seed


class NegativeSampler:
    """Draws negative targets for source nodes.

    ``distribution='uniform'`` draws every node equally; ``'degree'`` draws node v with
    probability proportional to ``in_degree(v) ** power`` (0.75, as word2vec and GraphVite),
    through an alias table so each draw is O(1). ``candidates`` (node ids; repeats count once)
    restricts the draws to those nodes, with the same distribution among them. With
    ``reject_edges`` a draw that is a true edge (or the source itself) is redrawn, up to
    ``max_tries`` times.
    """

    def __init__(self, graph: Graph, distribution: str = "uniform", *, candidates: Optional[torch.Tensor] = None,
                 power: float = 0.75, reject_edges: bool = True, max_tries: int = 10, seed: int = 0):
        if distribution not in ("uniform", "degree"):
            raise ValueError(f"distribution must be 'uniform' or 'degree', got {distribution!r}")
        if graph.num_nodes == 0:
            raise ValueError("cannot draw negatives from a graph without nodes")
        self.graph = graph
        self.distribution = distribution
        self.reject_edges = reject_edges
        self.max_tries = max_tries
        self.seed = seed
        self._calls = 0
        self.candidates = None if candidates is None else _candidate_ids(candidates, graph.num_nodes)
        self.table = self._alias_table(power)
        if reject_edges and not _has_sorted_rows(graph):
            raise ValueError("reject_edges needs sorted neighbour lists; build the Graph with gnnscale "
                             "(from_edge_index and friends sort them)")

    def _alias_table(self, power: float):
        """None for uniform draws over all nodes (the kernel's own); otherwise a table over the
        weights, zero outside the candidates (a zero-weight node is never drawn)."""
        if self.distribution == "uniform" and self.candidates is None:
            return None
        if self.distribution == "uniform":
            weight = torch.ones(self.graph.num_nodes, dtype=torch.float64)
        else:
            weight = self.graph.degree("in").to(torch.float64) ** power
        if self.candidates is not None:
            chosen = torch.zeros_like(weight)
            chosen[self.candidates] = 1.0
            weight = weight * chosen
            if not bool((weight > 0).any()):
                raise ValueError("no candidate can be drawn: every candidate has in-degree 0 "
                                 "(use distribution='uniform')")
        return ops.alias_table(weight)

    def sample(self, src: torch.Tensor, num_per_source: int = 1, *, seed: Optional[int] = None) -> torch.Tensor:
        """``[len(src), num_per_source]`` negative targets for the given sources."""
        if seed is None:
            seed = mix_seed(self.seed, 0x4E47, self._calls)
            self._calls += 1
        return ops.negative_tails(self.graph.indptr, self.graph.indices, src, num_per_source, table=self.table,
                                  reject_edges=self.reject_edges, max_tries=self.max_tries, seed=seed)

    def sample_nodes(self, num_samples: int, *, seed: int = 0) -> torch.Tensor:
        """``num_samples`` node ids from the sampler's distribution (no edge check)."""
        if self.table is None:
            gen = torch.Generator().manual_seed(seed)
            return torch.randint(0, self.graph.num_nodes, (num_samples,), generator=gen)
        return ops.alias_sample(*self.table, num_samples, seed=seed)


def _candidate_ids(candidates, num_nodes: int) -> torch.Tensor:
    candidates = torch.as_tensor(candidates)
    ops.check_index_tensor("candidates", candidates, num_nodes)
    if candidates.numel() == 0:
        raise ValueError("candidates is empty: there is no node to draw negatives from")
    return torch.unique(candidates.to(torch.int64))


def _has_sorted_rows(graph: Graph) -> bool:
    if graph.num_edges < 2:
        return True
    row_start = torch.zeros(graph.num_edges, dtype=torch.bool)
    row_start[graph.indptr[:-1][graph.degree() > 0]] = True
    ascending = graph.indices[1:] >= graph.indices[:-1]
    return bool((ascending | row_start[1:]).all())
