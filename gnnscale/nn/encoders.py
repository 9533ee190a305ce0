"""GraphSAGE / GCN / GAT encoders: stacks of PyG convolution layers with ReLU, dropout and an
optional final projection, usable on a full graph or on sampled blocks."""
from typing import List, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from .. import ops

ENCODERS = ("sage", "gcn", "gat")


def _conv(kind: str, in_dim: int, out_dim: int, heads: int, last: bool) -> nn.Module:
    from torch_geometric import nn as pyg

    if kind == "sage":
        return pyg.SAGEConv(in_dim, out_dim, aggr="mean")
    if kind == "gcn":
        return pyg.GCNConv(in_dim, out_dim, cached=False)
    if kind == "gat":
        # Hidden layers concatenate heads; the last averages them, as in the GAT paper.
        return pyg.GATConv(in_dim, out_dim if last else out_dim // heads, heads=heads, concat=not last)
    raise ValueError(f"unknown encoder {kind!r}; choose from {ENCODERS}")


class GNNEncoder(nn.Module):
    """``num_layers`` message-passing layers from ``in_dim`` to ``out_dim`` through ``hidden``.

    Dropout precedes every layer; ``input_dropout=False`` spares the first layer's input (OGB's
    link-prediction examples, whose inputs are learned node embeddings, drop only hidden layers)."""

    def __init__(self, kind: str, in_dim: int, hidden: int, out_dim: int, num_layers: int = 2,
                 dropout: float = 0.5, heads: int = 4, input_dropout: bool = True):
        super().__init__()
        if kind not in ENCODERS:
            raise ValueError(f"unknown encoder {kind!r}; choose from {ENCODERS}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if kind == "gat" and hidden % heads:
            raise ValueError(f"GAT hidden size {hidden} must be a multiple of heads ({heads})")
        self.kind = kind
        self.dropout = dropout
        self.input_dropout = input_dropout
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.convs = nn.ModuleList(
            _conv(kind, dims[i], dims[i + 1], heads, last=i == num_layers - 1) for i in range(num_layers)
        )

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    def layer(self, i: int, x: torch.Tensor, adjacency) -> torch.Tensor:
        """Layer i alone (dropout, convolution, activation), for layer-wise inference."""
        if i > 0 or self.input_dropout:
            x = ops.dropout(x, self.dropout, self.training)
        if x.dtype != torch.float32 and adjacency.layout == torch.sparse_csr:
            # bfloat16 activations under autocast: torch's sparse-dense product needs the sparse
            # matrix's dtype, and a float32 sum over hundreds of neighbours is the accurate one.
            x = x.float()
        x = self.convs[i](x, adjacency)
        if i < len(self.convs) - 1:
            x = F.elu(x) if self.kind == "gat" else F.relu(x)
        return x

    def forward(self, x: torch.Tensor, adjacency: Union[torch.Tensor, "object"],
                num_sampled_nodes: Optional[List[int]] = None,
                num_sampled_edges: Optional[List[int]] = None) -> torch.Tensor:
        """``adjacency``: an ``edge_index`` [2, E] (source, target), or a sparse CSR ``adj_t`` whose row
        v lists the sources of node v (a transposed adjacency, PyG's convention).

        On a sampled subgraph, pass its ``num_sampled_nodes`` / ``num_sampled_edges``: each layer
        then drops the outer hops it no longer needs (PyG's ``trim_to_layer``), and the first
        rows of the result belong to the seeds.
        """
        trim = num_sampled_nodes is not None and num_sampled_edges is not None
        if trim:
            from torch_geometric.utils import trim_to_layer
        for i in range(len(self.convs)):
            if trim:
                x, adjacency, _ = trim_to_layer(i, num_sampled_nodes, num_sampled_edges, x, adjacency)
            x = self.layer(i, x, adjacency)
        return x
