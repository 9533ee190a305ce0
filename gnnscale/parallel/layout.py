"""Where every node lives in parallel full-graph training: graph partitions (one per rank of a
pipeline stage) and, inside each partition, chunks (the micro-batches of the pipeline).

Nodes are renumbered so that partition p owns one contiguous id range and chunk c of it a
contiguous sub-range: a rank's rows, a chunk's rows and a halo's owner are then all slices and
binary searches, never lookups in per-node tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..graph import Graph

PARTITIONERS = ("metis", "contiguous")


@dataclass
class GraphLayout:
    """``order[new] = old`` node id; ``position[old] = new``. Partition p owns new ids
    ``[partition_offsets[p], partition_offsets[p+1])``, split into chunks at ``chunk_offsets[p]``
    (``num_chunks + 1`` boundaries, global new ids)."""

    order: torch.Tensor
    partition_offsets: torch.Tensor
    chunk_offsets: torch.Tensor  # [P, C + 1]

    @property
    def num_nodes(self) -> int:
        return self.order.numel()

    @property
    def num_partitions(self) -> int:
        return self.partition_offsets.numel() - 1

    @property
    def num_chunks(self) -> int:
        return self.chunk_offsets.size(1) - 1

    @property
    def position(self) -> torch.Tensor:
        position = torch.empty_like(self.order)
        position[self.order] = torch.arange(self.num_nodes)
        return position

    def chunk_of(self, nodes: torch.Tensor) -> torch.Tensor:
        """Chunk index of each (new) node id: chunk c spans sub-range c of every partition."""
        flat = self.chunk_offsets[:, 1:].reshape(-1)
        return torch.searchsorted(flat.contiguous(), nodes.contiguous(), right=True) % self.num_chunks

    def partition_of(self, nodes: torch.Tensor) -> torch.Tensor:
        return torch.searchsorted(self.partition_offsets[1:], nodes, right=True)

    def merged_chunks(self) -> "GraphLayout":
        """The same order and partitions with each partition as one chunk (full-graph passes)."""
        offsets = torch.stack([self.partition_offsets[:-1], self.partition_offsets[1:]], dim=1)
        return GraphLayout(self.order, self.partition_offsets, offsets.contiguous())


def offsets(counts: torch.Tensor) -> torch.Tensor:
    """``[0, c0, c0 + c1, ...]``: where each run of ``counts`` starts (a CSR indptr)."""
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def _undirected(graph: Graph):
    """The graph as METIS takes it: a symmetric scipy CSR without self-loops."""
    import scipy.sparse as sp

    n = graph.num_nodes
    adjacency = sp.csr_matrix((np.ones(graph.num_edges, dtype=np.int8), graph.indices.numpy(), graph.indptr.numpy()),
                              shape=(n, n))
    adjacency = (adjacency + adjacency.T).tocsr()
    adjacency.setdiag(0)
    adjacency.eliminate_zeros()
    return adjacency


def _metis(undirected, nodes: torch.Tensor, parts: int) -> torch.Tensor:
    """METIS part of each node in ``nodes`` for the subgraph they induce."""
    if parts == 1 or nodes.numel() <= parts:
        return _contiguous(undirected, nodes, parts)
    import pymetis

    keep = nodes.numpy()
    sub = undirected[keep][:, keep]
    sub.sort_indices()
    adjacency = pymetis.CSRAdjacency(sub.indptr.astype(np.int64), sub.indices.astype(np.int64))
    _, membership = pymetis.part_graph(parts, adjacency=adjacency)
    return torch.as_tensor(np.asarray(membership, dtype=np.int64))


def _contiguous(_, nodes: torch.Tensor, parts: int) -> torch.Tensor:
    return torch.arange(nodes.numel()) * parts // max(nodes.numel(), 1)


def partition_graph(graph: Graph, num_partitions: int, num_chunks: int = 1, *,
                    partitioner: str = "metis") -> GraphLayout:
    """Splits the nodes into ``num_partitions`` balanced parts with few cut edges, then each part into
    ``num_chunks`` chunks the same way, and renumbers nodes by (partition, chunk, old id).

    ``partitioner='contiguous'`` keeps the input order and cuts it into equal ranges (no METIS);
    with one partition and one chunk the layout is the identity either way."""
    if partitioner not in PARTITIONERS:
        raise ValueError(f"unknown partitioner {partitioner!r}; choose from {PARTITIONERS}")
    for name, value in (("num_partitions", num_partitions), ("num_chunks", num_chunks)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    n = graph.num_nodes
    if num_partitions * num_chunks > n:
        raise ValueError(f"{num_partitions} partitions x {num_chunks} chunks exceed the {n} nodes of the graph")
    split, undirected = (_metis, _undirected(graph)) if partitioner == "metis" else (_contiguous, None)
    partition = split(undirected, torch.arange(n), num_partitions)
    chunk = torch.empty(n, dtype=torch.int64)
    for p in range(num_partitions):
        members = torch.nonzero(partition == p).flatten()
        chunk[members] = split(undirected, members, num_chunks)
    key = (partition * num_chunks + chunk) * n + torch.arange(n)
    order = torch.argsort(key)
    counts = torch.bincount(partition * num_chunks + chunk, minlength=num_partitions * num_chunks)
    if int(counts.min()) == 0:
        raise ValueError(f"the partitioner left a chunk empty ({num_partitions} partitions x {num_chunks} chunks "
                         f"of {n} nodes); use fewer chunks or partitions")
    boundaries = offsets(counts)
    chunk_offsets = torch.stack([boundaries[p * num_chunks:(p + 1) * num_chunks + 1] for p in range(num_partitions)])
    return GraphLayout(order, boundaries[::num_chunks].contiguous(), chunk_offsets)


@dataclass
class NormalizedAdjacency:
    """Aggregation matrix in new ids, one row per destination (CSR): ``out[v] = sum_j values[j] *
    h[indices[j]]`` over ``j`` in row v. GCN: symmetric normalisation with self-loops
    (D^-1/2 (A + I) D^-1/2, degrees counted over in-edges plus the loop); mean: 1 / in-degree."""

    indptr: torch.Tensor
    indices: torch.Tensor
    values: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return self.indptr.numel() - 1

    def rows(self, start: int, end: int):
        """The rows ``[start, end)``: (local indptr, column ids, values)."""
        first, last = int(self.indptr[start]), int(self.indptr[end])
        return self.indptr[start:end + 1] - first, self.indices[first:last], self.values[first:last]


AGGREGATIONS = ("gcn", "mean")


def normalized_adjacency(graph: Graph, aggregation: str = "gcn", layout: Optional[GraphLayout] = None,
                         dtype: torch.dtype = torch.float32) -> NormalizedAdjacency:
    """The aggregation matrix of ``graph`` (edges u -> v bring u's state to v), renumbered by
    ``layout``; each row keeps its in-neighbours in the input order, with the self-loop last."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose from {AGGREGATIONS}")
    incoming = graph.csc()
    n = graph.num_nodes
    indptr, sources = incoming.indptr, incoming.indices.to(torch.int64)
    targets = torch.repeat_interleave(torch.arange(n), indptr[1:] - indptr[:-1])
    keep = sources != targets  # GCN adds its own self-loop; mean aggregation uses none
    sources, targets = sources[keep], targets[keep]
    if aggregation == "gcn":
        nodes = torch.arange(n)
        sources, targets = torch.cat([sources, nodes]), torch.cat([targets, nodes])
    in_degree = torch.bincount(targets, minlength=n).to(torch.float64)
    if aggregation == "gcn":
        scale = in_degree.pow(-0.5)
        values = scale[sources] * scale[targets]
    else:
        values = 1.0 / in_degree.clamp(min=1)[targets]
    if layout is not None:
        position = layout.position
        sources, targets = position[sources], position[targets]
    # Stable sort by destination keeps each row's input order (and the self-loop, appended, last).
    by_row = torch.sort(targets, stable=True).indices
    counts = torch.bincount(targets, minlength=n)
    return NormalizedAdjacency(offsets(counts), sources[by_row],
                               values[by_row].to(dtype))
