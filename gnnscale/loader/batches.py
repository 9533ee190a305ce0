"""What the loaders yield."""
from dataclasses import dataclass
from typing import Optional

import torch

from ..sampling import SampledSubgraph


@dataclass
class NodeBatch:
    """A sampled subgraph around ``batch_size`` seed nodes, with the features of all its nodes
    (``x[i]`` belongs to ``subgraph.node[i]``) and the seeds' labels."""

    subgraph: SampledSubgraph
    x: Optional[torch.Tensor]
    y: Optional[torch.Tensor]

    @property
    def batch_size(self) -> int:
        return self.subgraph.batch_size

    def to_pyg(self):
        return self.subgraph.to_pyg(self.x, self.y)


@dataclass
class LinkBatch:
    """A sampled subgraph around the endpoints of seed and negative edges; ``edge_label_index``
    holds local ids of the pairs to score and ``edge_label`` their 1/0 labels."""

    subgraph: SampledSubgraph
    x: Optional[torch.Tensor]
    edge_label_index: torch.Tensor
    edge_label: torch.Tensor

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
