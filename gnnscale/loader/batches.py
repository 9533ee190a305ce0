"""What the loaders yield.

:class:`NodeBatch` and :class:`LinkBatch` also read as the ``torch_geometric.data.Data``
mini-batches PyG's ``NeighborLoader`` and ``LinkNeighborLoader`` yield (``x``, ``edge_index``,
``n_id``, ``e_id``, ``num_sampled_nodes``, ``num_sampled_edges``, ``batch_size``, ``to``), so a
training loop written for PyG runs on gnnscale's loaders unchanged.
"""
from dataclasses import dataclass
from typing import List, Optional

import torch

from ..sampling import SampledSubgraph


def _moved(tensor: Optional[torch.Tensor], device) -> Optional[torch.Tensor]:
    return None if tensor is None else tensor.to(device)


class _SampledBatch:
    """PyG's names for what a sampled subgraph holds: local ids, flow source -> target."""

    subgraph: SampledSubgraph

    @property
    def edge_index(self) -> torch.Tensor:
        """``[2, E]`` local (source, target) ids of the sampled edges, hop by hop."""
        return self.subgraph.edge_index

    @property
    def n_id(self) -> torch.Tensor:
        """Global id of every node of the batch (``x[i]`` belongs to ``n_id[i]``)."""
        return self.subgraph.node

    @property
    def e_id(self) -> torch.Tensor:
        """Global id of every sampled edge (its column in the ``edge_index`` the graph was built from)."""
        return self.subgraph.edge

    @property
    def num_sampled_nodes(self) -> List[int]:
        """Nodes added at each hop, the seeds first (PyG's ``num_sampled_nodes``)."""
        return self.subgraph.num_sampled_nodes

    @property
    def num_sampled_edges(self) -> List[int]:
        """Edges sampled at each hop (PyG's ``num_sampled_edges``)."""
        return self.subgraph.num_sampled_edges

    @property
    def num_nodes(self) -> int:
        return self.subgraph.num_nodes

    @property
    def num_edges(self) -> int:
        return self.subgraph.num_edges


@dataclass
class NodeBatch(_SampledBatch):
    """A sampled subgraph around ``batch_size`` seed nodes, with the features of all its nodes
    (``x[i]`` belongs to ``subgraph.node[i]``, which is also ``n_id[i]``) and the seeds' labels.

    ``y`` holds the labels of the seeds only, not of every node as in PyG's batches: the loader
    gathers no labels it has no use for, and ``batch.y[:batch.batch_size]``, the way PyG's
    examples read labels, gives the seeds' labels from either.
    """

    subgraph: SampledSubgraph
    x: Optional[torch.Tensor]
    y: Optional[torch.Tensor]

    @property
    def batch_size(self) -> int:
        return self.subgraph.batch_size

    def to(self, device) -> "NodeBatch":
        """Moves the batch to ``device`` in place and returns it, as PyG's ``Data.to`` does."""
        self.subgraph = self.subgraph.to(device)
        self.x, self.y = _moved(self.x, device), _moved(self.y, device)
        return self

    def to_pyg(self):
        return self.subgraph.to_pyg(self.x, self.y)


@dataclass
class LinkBatch(_SampledBatch):
    """A sampled subgraph around the endpoints of seed and negative edges; ``edge_label_index``
    holds local ids of the pairs to score and ``edge_label`` their 1/0 labels."""

    subgraph: SampledSubgraph
    x: Optional[torch.Tensor]
    edge_label_index: torch.Tensor
    edge_label: torch.Tensor

    def to(self, device) -> "LinkBatch":
        """Moves the batch to ``device`` in place and returns it, as PyG's ``Data.to`` does."""
        self.subgraph = self.subgraph.to(device)
        self.x = _moved(self.x, device)
        self.edge_label_index, self.edge_label = self.edge_label_index.to(device), self.edge_label.to(device)
        return self

    def to_pyg(self):
        data = self.subgraph.to_pyg(self.x)
        data.edge_label_index = self.edge_label_index
        data.edge_label = self.edge_label
        return data


@dataclass
class EdgePairBatch:
    """Pairs to score with no subgraph: ``edge_label_index`` ``[2, P]`` global node ids, positives
    first, and ``edge_label`` their 1/0 labels."""

    edge_label_index: torch.Tensor
    edge_label: torch.Tensor


@dataclass
class TokenBatch:
    """Graph-transformer inputs of ``nodes``: ``tokens`` ``[B, T, width]``, the padding ``mask``
    ``[B, T]`` (True: no token there) and the nodes' labels."""

    nodes: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    y: Optional[torch.Tensor]

    @property
    def batch_size(self) -> int:
        return self.nodes.numel()
