"""SampledSubgraph: what a neighbour sampler returns, in PyG's layout, with per-layer blocks."""
from dataclasses import dataclass
from typing import List, Optional

import torch


@dataclass
class Block:
    """The edges one GNN layer aggregates over, in local ids, as CSC: destination v's sampled
    sources are ``indices[indptr[v]:indptr[v+1]]``. Destinations are the first ``num_dst`` of
    the ``num_src`` source nodes (the seeds and nearer hops come first)."""

    num_src: int
    num_dst: int
    indptr: torch.Tensor
    indices: torch.Tensor
    edge_ids: torch.Tensor  # global edge id of every entry of indices


@dataclass
class SampledSubgraph:
    """A multi-hop sample around a batch of seeds.

    ``node``: unique global node ids, the seeds first, then the new nodes of each hop in order of
    first appearance; ``row``/``col``: local source/target of every sampled edge, hop by hop and,
    within a hop, grouped by target; ``edge``: global edge ids; ``num_sampled_nodes[h]``: nodes
    added at hop h (h = 0: the seeds); ``num_sampled_edges[h]``: edges sampled at hop h + 1.
    This is the layout of PyG's NeighborLoader output (``n_id``, ``edge_index``, ``e_id``, ...).
    """

    node: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    edge: torch.Tensor
    num_sampled_nodes: List[int]
    num_sampled_edges: List[int]

    @property
    def batch_size(self) -> int:
        return self.num_sampled_nodes[0]

    @property
    def num_layers(self) -> int:
        return len(self.num_sampled_edges)

    @property
    def num_nodes(self) -> int:
        return self.node.numel()

    @property
    def num_edges(self) -> int:
        return self.row.numel()

    @property
    def edge_index(self) -> torch.Tensor:
        return torch.stack([self.row, self.col])

    def block(self, layer: int) -> Block:
        """The block of model layer ``layer`` (0 = the first layer applied, which reaches the
        outermost hop); the last layer's destinations are the seeds. Layer i keeps the edges of
        hops 1..L-i, which is what PyG's ``trim_to_layer`` leaves for it."""
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must lie in [0, {self.num_layers}), got {layer}")
        hops = self.num_layers - layer
        num_edges = sum(self.num_sampled_edges[:hops])
        num_dst = sum(self.num_sampled_nodes[:hops])
        num_src = sum(self.num_sampled_nodes[:hops + 1])
        # Edges come hop by hop, each hop grouped by increasing target: already in CSC order.
        counts = torch.bincount(self.col[:num_edges], minlength=num_dst)
        indptr = torch.zeros(num_dst + 1, dtype=torch.int64, device=counts.device)
        torch.cumsum(counts, 0, out=indptr[1:])
        return Block(num_src, num_dst, indptr, self.row[:num_edges], self.edge[:num_edges])

    def blocks(self) -> List[Block]:
        """One block per layer, in the order a model applies them."""
        return [self.block(layer) for layer in range(self.num_layers)]

    def to(self, device) -> "SampledSubgraph":
        # Only a copy to the GPU may be left in flight: a CPU reader of a tensor copied back
        # without waiting would see memory the copy has not written yet.
        non_blocking = torch.device(device).type == "cuda"
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return SampledSubgraph(move(self.node), move(self.row), move(self.col), move(self.edge),
                               self.num_sampled_nodes, self.num_sampled_edges)

    def to_pyg(self, x: Optional[torch.Tensor] = None, y: Optional[torch.Tensor] = None):
        """A torch_geometric ``Data`` as PyG's NeighborLoader builds it: ``edge_index``, ``n_id``,
        ``e_id``, ``num_sampled_nodes``, ``num_sampled_edges``, ``batch_size`` (and ``x``, ``y``
        when given, already gathered for ``n_id``)."""
        from torch_geometric.data import Data

        data = Data(edge_index=self.edge_index, num_nodes=self.num_nodes)
        data.n_id = self.node
        data.e_id = self.edge
        data.num_sampled_nodes = list(self.num_sampled_nodes)
        data.num_sampled_edges = list(self.num_sampled_edges)
        data.batch_size = self.batch_size
        if x is not None:
            data.x = x
        if y is not None:
            data.y = y
        return data
