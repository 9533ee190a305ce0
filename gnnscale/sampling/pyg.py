"""gnnscale's sampler behind PyG's interface, so PyG's NodeLoader / LinkLoader can use it."""
from typing import Optional

import torch
from torch_geometric.sampler import (BaseSampler, EdgeSamplerInput, NegativeSampling, NodeSamplerInput,
                                     SamplerOutput)
from torch_geometric.sampler.neighbor_sampler import edge_sample, node_sample

from ..graph import Graph
from .neighbor import NeighborSampler


class PyGNeighborSampler(BaseSampler):
    """A ``torch_geometric.sampler.BaseSampler`` running gnnscale's C++ neighbour sampler.

    Use it where PyG takes a sampler: ``NodeLoader(data, node_sampler=PyGNeighborSampler(data,
    [15, 10]), input_nodes=...)`` or ``LinkLoader(data, link_sampler=...)``. Edge ids in the
    output are those of ``data.edge_index``, so PyG attaches edge attributes correctly.
    """

    def __init__(self, data, fanouts, *, replace: bool = False, seed: int = 0):
        graph = data if isinstance(data, Graph) else Graph.from_pyg(data)
        self.sampler = NeighborSampler(graph, fanouts, replace=replace, seed=seed)
        self.num_nodes = graph.num_nodes

    def _sample(self, seed: torch.Tensor, seed_time: Optional[torch.Tensor] = None) -> SamplerOutput:
        if seed_time is not None:
            raise ValueError("PyGNeighborSampler does not sample by time; use gnnscale's temporal sampler")
        out = self.sampler.sample(seed)
        return SamplerOutput(node=out.node, row=out.row, col=out.col, edge=out.edge, batch=None,
                             num_sampled_nodes=out.num_sampled_nodes, num_sampled_edges=out.num_sampled_edges)

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs) -> SamplerOutput:
        return node_sample(index, self._sample)

    def sample_from_edges(self, index: EdgeSamplerInput,
                          neg_sampling: Optional[NegativeSampling] = None) -> SamplerOutput:
        return edge_sample(index, self._sample, self.num_nodes, disjoint=False, neg_sampling=neg_sampling)

    @property
    def edge_permutation(self):
        return None  # edge ids already refer to data.edge_index
