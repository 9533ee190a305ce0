"""TemporalLoader: the events of a :class:`~gnnscale.temporal_graph.TemporalGraph` in time order,
in batches, each with its negative destinations and the sampled temporal neighbourhood of its
queries, as a memory-based dynamic GNN (:class:`~gnnscale.nn.TemporalLinkModel`) consumes them.

The queries of a batch are its sources, its destinations and its negatives (each negative asked
at its positive's time). ``in_batch_visible`` decides whether a query may see events earlier in
its own batch as neighbours. On by default, as in TGN's reference implementation, whose neighbour
finder holds the whole training stream and returns each query's interactions strictly before its
time; off, neighbours come from earlier batches only, as with PyG's ``LastNeighborLoader``, which
is updated after each batch. The model's memory sees earlier batches only either way; visible
in-batch neighbours are what lifts the precision (bench/temporal.py on Wikipedia at batch 200:
test AP 0.973 with them, 0.954 without).

Batches are prepared ahead on background threads, and that is exact: a batch is a function of
the event stream, its event range and its seed only. Neighbours are chosen by event id (below the
query's own event, or below the batch's first) and time, never by the model's memory, which the
model reads when it embeds the batch, after the previous batch's commit. Events appended to the
graph later have larger ids, so they never become visible to a batch prepared earlier.

Batch b of epoch e draws its negatives (from :class:`~gnnscale.sampling.NegativeSampler`) and its
uniform neighbour samples with seeds mixed from (seed, e, b), so a run is reproducible, whatever
the number of threads, and resumable from any epoch. The epoch is an argument of
:meth:`TemporalLoader.iterate`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import torch

from .. import ops
from ..sampling.negative import NegativeSampler
from ..sampling.neighbor import mix_seed
from ..sampling.temporal import TemporalNeighborhood, TemporalNeighborSampler
from ..temporal_graph import TemporalGraph
from .loaders import _positive_int, check_num_threads
from .prefetch import prefetch

NEGATIVE_STREAM, NEIGHBOR_STREAM = 1, 2  # sub-seeds of a batch's seed


@dataclass
class TemporalBatch:
    """Events ``event_ids`` (``src -> dst`` at ``t``, their ``edge_features`` or None), ``negatives``
    ``[B, n]`` (other destinations for the same sources at the same times) and the
    ``neighborhood`` of the batch's queries: sources, then destinations, then the negatives row by
    row (:meth:`split` takes per-query results apart in that order). Tensors are on the host; the
    model moves what it needs to its device."""

    src: torch.Tensor
    dst: torch.Tensor
    t: torch.Tensor
    event_ids: torch.Tensor
    edge_features: Optional[torch.Tensor]
    negatives: torch.Tensor
    neighborhood: TemporalNeighborhood

    @property
    def num_events(self) -> int:
        return self.src.numel()

    @property
    def num_negatives(self) -> int:
        return self.negatives.size(1)

    def split(self, per_query: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows of ``per_query`` (one per query) as (sources ``[B, ...]``, destinations ``[B, ...]``,
        negatives ``[B, n, ...]``)."""
        count = self.num_events
        negatives = per_query[2 * count:]
        return (per_query[:count], per_query[count:2 * count],
                negatives.reshape(count, self.num_negatives, *negatives.shape[1:]))


def link_queries(src, dst, t, event_ids, negatives) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The queries of a batch in :class:`TemporalBatch`'s order: nodes, times and, per query, the
    event it belongs to."""
    per_event = negatives.size(1)
    nodes = torch.cat([src, dst, negatives.reshape(-1)])
    times = torch.cat([t, t, t.repeat_interleave(per_event)]).to(torch.float64)
    events = torch.cat([event_ids, event_ids, event_ids.repeat_interleave(per_event)])
    return nodes, times, events


class TemporalLoader:
    """Batches of ``batch_size`` consecutive events of ``graph``, from event ``start`` to ``stop``
    (default: the graph's last event at construction), in time order. Yields
    :class:`TemporalBatch`.

    Each event gets ``num_negatives`` negative destinations drawn uniformly from
    ``destinations`` (node ids; default: every node), or from ``negative``, a
    :class:`NegativeSampler` of the caller's. Each query gets its ``num_neighbors`` earlier
    interactions (``strategy`` 'recent' or 'uniform'); ``num_neighbors=0`` samples none (JODIE, or
    a replay of events into memory). ``num_threads`` threads prepare up to ``prefetch`` batches
    ahead (0: each batch is prepared when it is asked for).
    """

    def __init__(self, graph: TemporalGraph, batch_size: int, *, start: int = 0, stop: Optional[int] = None,
                 num_negatives: int = 1, destinations: Optional[torch.Tensor] = None,
                 negative: Optional[NegativeSampler] = None, num_neighbors: int = 10, strategy: str = "recent",
                 in_batch_visible: bool = True, seed: int = 0, num_threads: int = 1, prefetch: int = 2):
        if not isinstance(graph, TemporalGraph):
            raise ValueError(f"graph must be a TemporalGraph, got {type(graph).__name__}")
        self.graph = graph
        self.batch_size = _positive_int("batch_size", batch_size)
        self.start, self.stop = _event_range(start, stop, graph.num_events)
        self.num_negatives = _count("num_negatives", num_negatives)
        self.negative = _negative_sampler(graph, negative, destinations, self.num_negatives, seed)
        num_neighbors = _count("num_neighbors", num_neighbors)
        self.sampler = TemporalNeighborSampler(graph, num_neighbors, strategy, seed) if num_neighbors else None
        self.in_batch_visible = bool(in_batch_visible)
        self.seed = seed
        self.num_threads = check_num_threads(num_threads)
        self.prefetch_depth = _positive_int("prefetch", prefetch)

    def __len__(self) -> int:
        return -(-(self.stop - self.start) // self.batch_size)

    def iterate(self, epoch: int) -> Iterator[TemporalBatch]:
        """The batches of ``epoch`` (from 1, as every loader counts), in time order."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"epoch must be an int >= 1, got {epoch!r}")
        work = ((epoch, b, begin, min(begin + self.batch_size, self.stop))
                for b, begin in enumerate(range(self.start, self.stop, self.batch_size)))
        return prefetch(work, self._prepare, num_threads=self.num_threads, depth=self.prefetch_depth)

    def __iter__(self) -> Iterator[TemporalBatch]:
        """The batches of epoch 1: the same stream every time, as evaluation, replay and serving
        want (training asks for its epochs with :meth:`iterate`)."""
        return self.iterate(1)

    def _prepare(self, work) -> TemporalBatch:
        epoch, b, begin, end = work
        graph = self.graph
        src, dst, t = graph.src[begin:end], graph.dst[begin:end], graph.t[begin:end]
        event_ids = torch.arange(begin, end)
        features = None if graph.edge_features is None else graph.edge_features[begin:end]
        batch_seed = mix_seed(self.seed, epoch, b)
        negatives = self._negatives(src, mix_seed(batch_seed, NEGATIVE_STREAM))
        nodes, times, events = link_queries(src, dst, t, event_ids, negatives)
        neighborhood = self._neighborhood(nodes, times, events, begin, mix_seed(batch_seed, NEIGHBOR_STREAM))
        return TemporalBatch(src, dst, t, event_ids, features, negatives, neighborhood)

    def _negatives(self, src: torch.Tensor, seed: int) -> torch.Tensor:
        if self.negative is None:
            return src.new_empty(src.numel(), 0)
        return self.negative.sample(src, self.num_negatives, seed=seed)

    def _neighborhood(self, nodes, times, events, batch_start: int, seed: int) -> TemporalNeighborhood:
        if self.sampler is None:
            return TemporalNeighborhood.of_queries(nodes, times)
        # A query sees events before its own, or, without in-batch visibility, before its batch.
        limit = events if self.in_batch_visible else torch.full_like(events, batch_start)
        return self.sampler.neighborhood(nodes, times, before_event=limit, seed=seed)


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def _event_range(start, stop, num_events: int) -> Tuple[int, int]:
    stop = num_events if stop is None else stop
    for name, value in (("start", start), ("stop", stop)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int event id, got {value!r}")
    if not 0 <= start < stop <= num_events:
        raise ValueError(f"the event range [{start}, {stop}) is empty or outside the graph's events [0, {num_events})")
    return start, stop


def _negative_sampler(graph: TemporalGraph, negative: Optional[NegativeSampler],
                      destinations: Optional[torch.Tensor], num_negatives: int, seed: int):
    """The caller's sampler, or uniform draws over ``destinations`` (TGN's protocol: a negative
    may be a true later destination of the source, so there is no edge check)."""
    if negative is not None:
        if destinations is not None:
            raise ValueError("pass either destinations or a NegativeSampler (negative=), not both")
        if not isinstance(negative, NegativeSampler):
            raise ValueError(f"negative must be a NegativeSampler, got {type(negative).__name__}")
        if negative.graph.num_nodes < graph.num_nodes:
            raise ValueError(f"the NegativeSampler's graph has {negative.graph.num_nodes} nodes, fewer than the "
                             f"temporal graph's {graph.num_nodes}")
        return negative
    if num_negatives == 0:
        return None
    if destinations is not None:
        destinations = torch.as_tensor(destinations)
        ops.check_index_tensor("destinations", destinations, graph.num_nodes)
        if destinations.numel() == 0:
            raise ValueError("destinations is empty: there is no node to draw negatives from")
    return NegativeSampler(graph.static_graph(), "uniform", candidates=destinations, reject_edges=False, seed=seed)
