"""What one graph partition computes and exchanges for each chunk.

A rank's local node space is its own rows ``[0, n_own)`` followed by its halo (in-neighbours owned
by other partitions, ascending global id) at ``[n_own, n_own + n_halo)``. For chunk c, a row's
neighbours are either *fresh* (in chunk c, own or halo: the values flowing through the pipeline
now, with gradients) or *historical* (any other chunk: read, detached, from the layer's history
buffer over the local space). Each halo row belongs to exactly one chunk, so it is exchanged once
per layer and epoch whatever the number of chunks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch

from .layout import GraphLayout, NormalizedAdjacency, offsets
from .propagation import Propagation


@dataclass
class ChunkPlan:
    start: int  # own local rows [start, end) are this chunk's rows
    end: int
    fresh: Propagation  # rows: chunk rows; columns: chunk rows, then the chunk's halo rows
    history: Optional[Propagation]  # columns: the local space; None when every neighbour is fresh
    halo_positions: torch.Tensor  # local positions of the chunk's halo rows (history updates)
    send_index: torch.Tensor  # chunk rows other partitions need, grouped by destination partition
    send_counts: List[int]
    recv_counts: List[int]  # the chunk's halo rows, grouped by owner partition

    @property
    def num_rows(self) -> int:
        return self.end - self.start

    def to(self, device) -> "ChunkPlan":
        return ChunkPlan(self.start, self.end, self.fresh.to(device),
                         None if self.history is None else self.history.to(device),
                         self.halo_positions.to(device), self.send_index.to(device), self.send_counts,
                         self.recv_counts)


@dataclass
class PartitionPlan:
    partition: int
    own_start: int  # global (new) ids [own_start, own_end)
    own_end: int
    halo: torch.Tensor  # global ids, ascending
    chunks: List[ChunkPlan]

    @property
    def num_own(self) -> int:
        return self.own_end - self.own_start

    @property
    def num_local(self) -> int:
        return self.num_own + self.halo.numel()

    def to(self, device) -> "PartitionPlan":
        return PartitionPlan(self.partition, self.own_start, self.own_end, self.halo,
                             [chunk.to(device) for chunk in self.chunks])


def partition_halos(adjacency: NormalizedAdjacency, layout: GraphLayout) -> List[torch.Tensor]:
    """For each partition: the global ids, ascending, of its rows' neighbours owned elsewhere."""
    halos = []
    for p in range(layout.num_partitions):
        start, end = int(layout.partition_offsets[p]), int(layout.partition_offsets[p + 1])
        _, sources, _ = adjacency.rows(start, end)
        outside = sources[(sources < start) | (sources >= end)]
        halos.append(torch.unique(outside))
    return halos


def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, num_rows: int, num_cols: int):
    """CSR from entries already ordered by row (order inside each row kept)."""
    return Propagation(offsets(torch.bincount(rows, minlength=num_rows)), cols, values, num_cols)


def build_partition_plan(adjacency: NormalizedAdjacency, layout: GraphLayout, partition: int,
                         halos: Optional[List[torch.Tensor]] = None) -> PartitionPlan:
    halos = halos if halos is not None else partition_halos(adjacency, layout)
    own_start, own_end = int(layout.partition_offsets[partition]), int(layout.partition_offsets[partition + 1])
    halo = halos[partition]
    num_own = own_end - own_start
    halo_chunk = layout.chunk_of(halo)
    halo_owner = layout.partition_of(halo)
    num_partitions = layout.num_partitions
    chunks = []
    for c in range(layout.num_chunks):
        start, end = int(layout.chunk_offsets[partition, c]), int(layout.chunk_offsets[partition, c + 1])
        indptr, sources, values = adjacency.rows(start, end)
        rows = torch.repeat_interleave(torch.arange(end - start), indptr[1:] - indptr[:-1])
        chunk_halo = halo[halo_chunk == c]
        in_chunk_rows = (sources >= start) & (sources < end)
        in_chunk_halo = layout.chunk_of(sources) == c
        own = (sources >= own_start) & (sources < own_end)
        fresh = in_chunk_rows | (~own & in_chunk_halo)
        fresh_cols = torch.where(in_chunk_rows, sources - start,
                                 (end - start) + torch.searchsorted(chunk_halo, sources))
        local_cols = torch.where(own, sources - own_start, num_own + torch.searchsorted(halo, sources))
        history = ~fresh
        fresh_plan = _csr(rows[fresh], fresh_cols[fresh], values[fresh], end - start,
                          end - start + chunk_halo.numel())
        history_plan = (_csr(rows[history], local_cols[history], values[history], end - start,
                             num_own + halo.numel()) if bool(history.any()) else None)
        send_parts, send_counts = [], []
        for q in range(num_partitions):
            needed = halos[q] if q != partition else halo.new_empty(0)
            needed = needed[(needed >= start) & (needed < end)]
            send_parts.append(needed - start)
            send_counts.append(needed.numel())
        chunk_owner = halo_owner[halo_chunk == c]
        recv_counts = torch.bincount(chunk_owner, minlength=num_partitions).tolist()
        chunks.append(ChunkPlan(
            start=start - own_start, end=end - own_start, fresh=fresh_plan, history=history_plan,
            halo_positions=num_own + torch.nonzero(halo_chunk == c).flatten(),
            send_index=torch.cat(send_parts), send_counts=send_counts, recv_counts=recv_counts))
    return PartitionPlan(partition, own_start, own_end, halo, chunks)
