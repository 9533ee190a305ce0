"""TemporalGraph: a stream of timestamped events, indexed for "neighbours before time t" queries.

Events are kept in arrival order, which must be time order (ties allowed). Each node's
neighbour list (both directions of every event: memory-based models treat interactions as
undirected) is stored in event order, so the events visible at a time t, or before a given event,
are a prefix of the list found by binary search. New events may be appended as they stream in;
the index is rebuilt on the next query, in one stable sort.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .graph import Graph
from .ops import check_index_tensor


@dataclass(frozen=True)
class TimeSortedCSR:
    """Per node, the events it took part in, in event (time) order: ``neighbors[s]``,
    ``edge_ids[s]`` and ``edge_times[s]`` for slots ``s`` in ``indptr[v]:indptr[v + 1]``."""

    indptr: torch.Tensor
    neighbors: torch.Tensor
    edge_ids: torch.Tensor
    edge_times: torch.Tensor


class TemporalGraph:
    """Events ``src[i] -> dst[i]`` at time ``t[i]`` with optional ``edge_features[i]``.

    ``num_nodes`` may grow when appended events name new nodes. Event ids are positions in the
    stream (0, 1, ...), so "events before event e" and "events before time t" are both prefixes.
    """

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor,
                 edge_features: Optional[torch.Tensor] = None, num_nodes: Optional[int] = None):
        src, dst, t, edge_features = self._checked(src, dst, t, edge_features, last_time=None)
        self.src, self.dst, self.t, self.edge_features = src, dst, t, edge_features
        largest = int(torch.maximum(src.max(), dst.max())) + 1 if src.numel() else 0
        if num_nodes is not None and num_nodes < largest:
            raise ValueError(f"num_nodes={num_nodes} but the events name node {largest - 1}")
        self.num_nodes = max(largest, num_nodes or 0)
        self._csr: Optional[TimeSortedCSR] = None

    @classmethod
    def from_dataset(cls, dataset, events: Optional[torch.Tensor] = None) -> "TemporalGraph":
        """The events of a :class:`~gnnscale.datasets.TemporalDataset` (all, or those at ``events``)."""
        pick = (lambda x: x) if events is None else (lambda x: x[events])
        features = None if dataset.edge_features is None else pick(dataset.edge_features)
        return cls(pick(dataset.src), pick(dataset.dst), pick(dataset.t), features, num_nodes=dataset.num_nodes)

    @classmethod
    def from_pyg(cls, data) -> "TemporalGraph":
        """Events of a torch_geometric ``TemporalData``: ``src``, ``dst``, ``t``, ``msg`` as edge features.
        Events not in time order are sorted (stably)."""
        src, dst, t = (getattr(data, name, None) for name in ("src", "dst", "t"))
        if src is None or dst is None or t is None:
            raise ValueError("the TemporalData has no src, dst or t")
        order = torch.argsort(torch.as_tensor(t), stable=True)
        msg = getattr(data, "msg", None)
        num_nodes = int(data.num_nodes) if src.numel() else None
        return cls(src[order], dst[order], t[order], None if msg is None else msg[order], num_nodes=num_nodes)

    def to_pyg(self):
        """A torch_geometric ``TemporalData`` with ``src``, ``dst``, ``t`` (and ``msg``)."""
        from torch_geometric.data import TemporalData

        data = TemporalData(src=self.src, dst=self.dst, t=self.t)
        if self.edge_features is not None:
            data.msg = self.edge_features
        return data

    @property
    def num_events(self) -> int:
        return self.src.numel()

    @property
    def edge_feature_dim(self) -> int:
        return 0 if self.edge_features is None else self.edge_features.size(1)

    def append(self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor,
               edge_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Adds events that happen no earlier than the last one; returns their event ids."""
        last = float(self.t[-1]) if self.num_events else None
        src, dst, t, edge_features = self._checked(src, dst, t, edge_features, last_time=last)
        if (edge_features is None) != (self.edge_features is None) and src.numel():
            raise ValueError("appended events must carry edge features exactly when the graph's events do")
        first = self.num_events
        self.src, self.dst, self.t = torch.cat([self.src, src]), torch.cat([self.dst, dst]), torch.cat([self.t, t])
        if edge_features is not None:
            self.edge_features = torch.cat([self.edge_features, edge_features])
        if src.numel():
            self.num_nodes = max(self.num_nodes, int(torch.maximum(src.max(), dst.max())) + 1)
        self._csr = None
        return torch.arange(first, self.num_events)

    def csr(self) -> TimeSortedCSR:
        """The per-node event index, built on first use after a change."""
        if self._csr is None:
            event = torch.arange(self.num_events).repeat_interleave(2)
            owner = torch.stack([self.src, self.dst], 1).reshape(-1)
            other = torch.stack([self.dst, self.src], 1).reshape(-1)
            # A self-interaction is listed once, not once per direction.
            keep = torch.ones_like(owner, dtype=torch.bool)
            keep[1::2] = self.src != self.dst
            event, owner, other = event[keep], owner[keep], other[keep]
            # A stable sort by owner keeps each node's slots in event order.
            owner_sorted, order = torch.sort(owner, stable=True)
            counts = torch.bincount(owner_sorted, minlength=self.num_nodes)
            indptr = torch.zeros(self.num_nodes + 1, dtype=torch.int64)
            torch.cumsum(counts, 0, out=indptr[1:])
            index_dtype = torch.int32 if self.num_nodes < 2**31 else torch.int64
            self._csr = TimeSortedCSR(indptr, other[order].to(index_dtype).contiguous(), event[order].contiguous(),
                                      self.t[event[order]].contiguous())
        return self._csr

    def static_graph(self) -> Graph:
        """The events as a static directed :class:`~gnnscale.graph.Graph` ``src -> dst`` (one edge
        per event, repeats kept), for what takes a Graph, such as a NegativeSampler."""
        return Graph.from_edge_index(torch.stack([self.src, self.dst]), self.num_nodes)

    def __repr__(self) -> str:
        return (f"TemporalGraph(num_nodes={self.num_nodes}, num_events={self.num_events}, "
                f"edge_feature_dim={self.edge_feature_dim})")

    @staticmethod
    def _checked(src, dst, t, edge_features, last_time):
        src = torch.as_tensor(src).reshape(-1)
        dst = torch.as_tensor(dst).reshape(-1)
        check_index_tensor("src", src)
        check_index_tensor("dst", dst)
        src, dst = src.to(torch.int64), dst.to(torch.int64)
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        if not (src.numel() == dst.numel() == t.numel()):
            raise ValueError(f"src, dst and t must have one entry per event, got {src.numel()}, {dst.numel()}, "
                             f"{t.numel()}")
        if not torch.isfinite(t).all():
            raise ValueError("event times must be finite")
        if t.numel() > 1 and bool((t[1:] < t[:-1]).any()):
            first = int(torch.nonzero(t[1:] < t[:-1])[0]) + 1
            raise ValueError(f"events must be in time order: event {first} at t={float(t[first])} comes after "
                             f"t={float(t[first - 1])}")
        if last_time is not None and t.numel() and float(t[0]) < last_time:
            raise ValueError(f"appended events start at t={float(t[0])}, before the last event (t={last_time})")
        if edge_features is not None:
            edge_features = torch.as_tensor(edge_features, dtype=torch.float32)
            if edge_features.dim() != 2 or edge_features.size(0) != src.numel():
                raise ValueError(f"edge_features must be [num_events={src.numel()}, dim], got "
                                 f"{tuple(edge_features.shape)}")
        return src, dst, t.contiguous(), edge_features
