"""NodeLoader and LinkLoader: mini-batches of sampled subgraphs with their gathered features;
TokenLoader: mini-batches of graph-transformer tokens.

Features come from a tensor (wrapped as a UnifiedTensor, without a copy), a UnifiedTensor (which
may be memory-mapped and pinned for zero-copy GPU reads), a FeatureCache, or a FeatureStore
(its table "x").

Sampling and gathering for the next batches run on background threads while the consumer
trains on the current one. Batch b of epoch e is sampled with a seed mixed from (seed, e, b),
so a run is reproducible whatever the number of threads. ``num_threads`` is the number of those
threads; 0 prepares every batch in the consumer's thread, when it asks for it; None (the
default) picks one or none from the cores this process has (``default_loader_threads``).

Data-parallel ranks (``rank`` of ``world_size``) share one order: each step takes a global batch
of ``batch_size * world_size`` items and every rank yields its contiguous share of it, so N ranks
with ``batch_size`` B/N see the same items per step as one process with B. A final global batch
with fewer items than ranks is dropped (some rank would have nothing to train on).
"""
import dataclasses
import os
import threading
from typing import Optional, Sequence, Union

import torch

from .. import ops
from ..distributed.ranks import check_rank, span
from ..graph import Graph
from ..sampling import LinkNeighborSampler, NegativeSampler, NeighborSampler, SampledSubgraph
from ..sampling.link import check_corrupt, share_pairs, with_negatives
from ..sampling.neighbor import mix_seed
from ..storage import DiskTensor, FeatureCache, FeatureStore, TokenTable, UnifiedTensor
from .batches import EdgePairBatch, LinkBatch, NodeBatch, TokenBatch
from .buffers import BufferRing
from .prefetch import prefetch


def check_num_threads(num_threads) -> int:
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
        raise ValueError(f"num_threads must be an int >= 0 (0: batches are prepared in the consumer's thread), "
                         f"got {num_threads!r}")
    return num_threads


def default_loader_threads(device: torch.device) -> int:
    """The loader threads ``num_threads=None`` means: one, unless this process's share of the
    machine's cores is a single core (ranks started on one machine split its cores), where a
    loader thread only takes turns with the training step on that core. Measured on 2 cores,
    GraphSAGE [15, 10, 5], batch 1024: one process steps about 6% faster with the thread; 2 ranks
    with one each ran at 1.18x one rank's throughput, without at 1.56x (bench/ddp.py)."""
    if device.type == "cuda":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return 1 if cores // local_ranks > 1 else 0


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class _Loader:
    """Settings are checked before a subclass does any work; it then sets ``num_items``."""

    num_items: int

    def __init__(self, batch_size: int, shuffle: bool, drop_last: bool, seed: int, num_threads: Optional[int],
                 prefetch_depth: int, device, rank: int = 0, world_size: int = 1):
        check_rank(rank, world_size)
        self.rank, self.world_size = rank, world_size
        self.batch_size = _positive_int("batch_size", batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.device = ops.check_device(device)
        self.num_threads = default_loader_threads(self.device) if num_threads is None else check_num_threads(num_threads)
        self.prefetch_depth = _positive_int("prefetch", prefetch_depth)
        self._epochs_iterated = 0
        self._thread_state = threading.local()
        # Batches prepared ahead, one being prepared by each thread, one the consumer holds, and
        # one it has just let go of (the consumer's next step usually still refers to it).
        self._buffers = BufferRing(self.prefetch_depth + max(self.num_threads, 1) + 2)

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        full, rest = divmod(self.num_items, self.batch_size * self.world_size)
        return full if self.drop_last or rest < self.world_size else full + 1

    def _orders(self, epoch: int):
        """Per step: its index and the positions of its global batch (all ranks' items)."""
        if self.shuffle:
            gen = torch.Generator().manual_seed(mix_seed(self.seed, 0x5EED, epoch))
            order = torch.randperm(self.num_items, generator=gen)
        else:
            order = torch.arange(self.num_items)
        step = self.batch_size * self.world_size
        return [(b, order[b * step:(b + 1) * step]) for b in range(len(self))]

    def _share(self, positions: torch.Tensor) -> torch.Tensor:
        """This rank's span of a global batch."""
        start, stop = span(positions.numel(), self.rank, self.world_size)
        return positions[start:stop]

    def __iter__(self):
        """The next epoch's batches: epochs 1, 2, ... in turn, as a plain training loop expects."""
        self._epochs_iterated += 1
        return self.iterate(self._epochs_iterated)

    def iterate(self, epoch: int, **options):
        """The batches of ``epoch`` (from 1): a function of (seed, epoch, batch) only, so any epoch
        can be replayed or resumed exactly."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"epoch must be an int >= 1, got {epoch!r}")
        work = ((epoch, b, positions, options) for b, positions in self._orders(epoch))
        if self.device.type != "cuda":
            return prefetch(work, self._prepare, num_threads=self.num_threads, depth=self.prefetch_depth)
        batches = prefetch(work, self._prepare_on_side_stream, num_threads=self.num_threads,
                           depth=self.prefetch_depth)
        return (self._hand_over(batch, ready) for batch, ready in batches)

    def _prepare_on_side_stream(self, work):
        """Gathers and copies on a stream of the loader thread's own, so they overlap the
        consumer's kernels; the event marks when the batch is complete."""
        local = self._thread_state
        if getattr(local, "stream", None) is None:
            local.stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(local.stream):
            batch = self._prepare(work)
            ready = torch.cuda.Event()
            ready.record(local.stream)
        return batch, ready

    def _hand_over(self, batch, ready):
        consumer = torch.cuda.current_stream(self.device)
        consumer.wait_event(ready)
        for tensor in _tensors_of(batch):
            if tensor.is_cuda:  # memory made on the side stream is now also in use on this one
                tensor.record_stream(consumer)
        return batch

    def _gather(self, table, index: torch.Tensor) -> Optional[torch.Tensor]:
        """Rows of a feature source (UnifiedTensor, DiskTensor or FeatureCache) or a label tensor."""
        if table is None:
            return None
        if isinstance(table, torch.Tensor):  # labels: small rows, a plain index suffices
            return table.index_select(0, index.to(table.device)).to(self.device, non_blocking=True)
        if self.device.type == "cpu" and isinstance(table, (UnifiedTensor, DiskTensor)):
            out = self._buffers.empty(index.numel(), table.shape[1], table.dtype)
            return table.gather(index, device=self.device, out=out)
        return table.gather(index, device=self.device)


def _tensors_of(batch):
    """Every tensor a batch holds, its subgraph's included (batches are dataclasses)."""
    for field in dataclasses.fields(batch):
        value = getattr(batch, field.name)
        if isinstance(value, SampledSubgraph):
            yield from (value.node, value.row, value.col, value.edge)
        elif isinstance(value, torch.Tensor):
            yield value


def _feature_source(features, num_nodes: int):
    """Features as something with ``gather(index, device=...)``: a tensor is wrapped (no copy)."""
    if features is None:
        return None
    if isinstance(features, FeatureStore):  # PyG's homogeneous layout: group None, attribute "x"
        features = features.table(None, "x")
    if isinstance(features, torch.Tensor):
        if features.dim() != 2:
            raise ValueError(f"features must be a 2-D [num_nodes, width] tensor, got shape {tuple(features.shape)}")
        features = UnifiedTensor(features)
    if not isinstance(features, (UnifiedTensor, DiskTensor, FeatureCache)):
        raise ValueError("features must be a tensor, UnifiedTensor, DiskTensor, FeatureCache or FeatureStore, "
                         f"got {type(features).__name__}")
    if len(features) != num_nodes:
        raise ValueError(f"features must have one row per node ({num_nodes}), got {len(features)}")
    return features


def _node_ids(name: str, nodes, num_nodes: int) -> torch.Tensor:
    """The nodes a loader batches, as int64 ids: a boolean mask becomes the ids it selects."""
    nodes = torch.as_tensor(nodes)
    if nodes.dtype == torch.bool:
        if nodes.dim() != 1 or nodes.numel() != num_nodes:
            raise ValueError(f"{name} is a boolean mask of length {nodes.numel()} (shape {tuple(nodes.shape)}), "
                             f"but the graph has {num_nodes} nodes: a mask needs one entry per node")
        nodes = torch.nonzero(nodes).flatten()
    ops.check_index_tensor(name, nodes, num_nodes)
    if nodes.numel() == 0:
        raise ValueError(f"{name} is empty: the loader has no nodes to batch")
    return nodes.to(torch.int64)


def _check_table(name: str, table: Optional[torch.Tensor], num_nodes: int) -> Optional[torch.Tensor]:
    if table is None:
        return None
    if not isinstance(table, torch.Tensor) or table.dim() < 1 or table.size(0) != num_nodes:
        raise ValueError(f"{name} must be a tensor with one row per node ({num_nodes})")
    return table


class NodeLoader(_Loader):
    """Batches of ``batch_size`` seeds from ``seeds`` (node ids, or a boolean mask with one entry
    per node), each expanded by ``fanouts`` (one per layer, -1 for all neighbours), with
    ``features`` gathered for every sampled node and ``labels`` for
    the seeds. Yields :class:`NodeBatch` on ``device``. ``sample_on_device=True`` samples on
    the GPU ``device`` too (indices in GPU memory, or pinned host memory with
    ``indices_on='host'``).
    """

    def __init__(self, graph: Graph, features: Optional[torch.Tensor], seeds: torch.Tensor,
                 fanouts: Sequence[int], batch_size: int, *, labels: Optional[torch.Tensor] = None,
                 shuffle: bool = True, drop_last: bool = False, replace: bool = False, weighted: bool = False,
                 seed: int = 0, num_threads: Optional[int] = None, prefetch: int = 2, device: Union[str, torch.device] = "cpu",
                 sample_on_device: bool = False, indices_on: str = "device", rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, shuffle, drop_last, seed, num_threads, prefetch, device, rank, world_size)
        self.sampler = NeighborSampler(graph, fanouts, replace=replace, weighted=weighted, seed=seed,
                                       device=self.device if sample_on_device else "cpu", indices_on=indices_on)
        self.seeds = _node_ids("seeds", seeds, graph.num_nodes)
        self.num_items = self.seeds.numel()
        self.features = _feature_source(features, graph.num_nodes)
        self.labels = _check_table("labels", labels, graph.num_nodes)

    def _prepare(self, work) -> NodeBatch:
        epoch, b, positions, _ = work
        subgraph = self.sampler.sample(self.seeds[self._share(positions)], seed=mix_seed(self.seed, epoch, b))
        y = self._gather(self.labels, subgraph.node[:subgraph.batch_size])
        x = self._gather(self.features, subgraph.node)
        if self.device.type != "cpu":
            subgraph = subgraph.to(self.device)
        return NodeBatch(subgraph, x, y)


class LinkLoader(_Loader):
    """Batches of ``batch_size`` seed edges (``edges``: ``[2, M]`` source/target ids), each with
    ``num_negatives`` negatives per positive from ``negative`` ('uniform', 'degree' or a
    :class:`NegativeSampler`; ``corrupt``: 'target' keeps the positive's source, 'both' draws
    random pairs), and the neighbourhoods of all endpoints. Yields :class:`LinkBatch`.
    """

    def __init__(self, graph: Graph, features: Optional[torch.Tensor], edges: torch.Tensor,
                 fanouts: Sequence[int], batch_size: int, *,
                 negative: Union[str, NegativeSampler, None] = "uniform", num_negatives: int = 1,
                 corrupt: str = "target", shuffle: bool = True, drop_last: bool = False, replace: bool = False,
                 seed: int = 0, num_threads: Optional[int] = None, prefetch: int = 2, device: Union[str, torch.device] = "cpu",
                 rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, shuffle, drop_last, seed, num_threads, prefetch, device, rank, world_size)
        edges = _seed_edges(edges, graph)
        negative, num_negatives = _negative_sampler(negative, num_negatives, graph, seed)
        self.sampler = LinkNeighborSampler(graph, fanouts, negative=negative, num_negatives=num_negatives,
                                           corrupt=corrupt, replace=replace, seed=seed)
        self.edges = edges
        self.num_items = edges.size(1)
        self.features = _feature_source(features, graph.num_nodes)

    def _prepare(self, work) -> LinkBatch:
        epoch, b, positions, _ = work
        pairs = self.edges[:, positions]
        sample = self.sampler.sample(pairs[0], pairs[1], seed=mix_seed(self.seed, epoch, b),
                                     share=(self.rank, self.world_size))
        x = self._gather(self.features, sample.subgraph.node)
        subgraph, index, label = sample.subgraph, sample.edge_label_index, sample.edge_label
        if self.device.type != "cpu":
            subgraph, index, label = subgraph.to(self.device), index.to(self.device), label.to(self.device)
        return LinkBatch(subgraph, x, index, label)


class EdgePairLoader(_Loader):
    """Batches of ``batch_size`` seed edges (``edges``: ``[2, M]``) with ``num_negatives`` negatives
    per positive, and no neighbourhoods: for models that encode the whole graph at every step
    (full-neighbourhood link prediction, as OGB's full-batch examples train). Batch b of epoch e
    holds the same pairs as :class:`LinkLoader`'s with the same seed. Yields :class:`EdgePairBatch`.
    """

    def __init__(self, graph: Graph, edges: torch.Tensor, batch_size: int, *,
                 negative: Union[str, NegativeSampler, None] = "uniform", num_negatives: int = 1,
                 corrupt: str = "target", shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 num_threads: Optional[int] = None, prefetch: int = 2, device: Union[str, torch.device] = "cpu",
                 rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, shuffle, drop_last, seed, num_threads, prefetch, device, rank, world_size)
        self.edges = _seed_edges(edges, graph)
        self.negative, self.num_negatives = _negative_sampler(negative, num_negatives, graph, seed)
        self.corrupt = check_corrupt(corrupt)
        self.num_items = self.edges.size(1)

    def _prepare(self, work) -> EdgePairBatch:
        epoch, b, positions, _ = work
        src, dst = self.edges[:, positions]
        # The seeds LinkNeighborSampler.sample mixes, so both loaders draw the same negatives.
        pairs, labels = with_negatives(src, dst, self.negative, self.num_negatives,
                                       seed=mix_seed(mix_seed(self.seed, epoch, b), 1), corrupt=self.corrupt)
        pairs, labels = share_pairs(pairs, labels, src.numel(), self.num_negatives, self.rank, self.world_size)
        return EdgePairBatch(pairs.to(self.device), labels.to(self.device))


def _seed_edges(edges, graph: Graph) -> torch.Tensor:
    edges = torch.as_tensor(edges)
    if edges.dim() != 2 or edges.size(0) != 2:
        raise ValueError(f"edges must have shape [2, num_edges], got {tuple(edges.shape)}")
    if edges.size(1) == 0:
        raise ValueError("edges is empty: the loader has no edges to batch")
    ops.check_index_tensor("edges", edges.reshape(-1), graph.num_nodes)
    return edges.to(torch.int64)


def _negative_sampler(negative, num_negatives: int, graph: Graph, seed: int):
    if isinstance(negative, str):
        negative = NegativeSampler(graph, negative, seed=seed)
    if negative is None:
        num_negatives = 0
    elif num_negatives < 0:
        raise ValueError(f"num_negatives must be non-negative, got {num_negatives}")
    return negative, num_negatives


class TokenLoader(_Loader):
    """Batches of ``batch_size`` nodes from ``nodes`` (ids, or a boolean mask) with their tokens and
    padding masks gathered from a :class:`TokenTable` (and ``labels``), prepared ahead on background threads. Yields
    :class:`TokenBatch` on ``device``. ``iterate(epoch, round=r)`` draws the token nodes of sampling
    round ``r`` (0, the default: the stored token nodes)."""

    def __init__(self, table: TokenTable, nodes: torch.Tensor, batch_size: int, *,
                 labels: Optional[torch.Tensor] = None, shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 num_threads: Optional[int] = None, prefetch: int = 2, device: Union[str, torch.device] = "cpu",
                 rank: int = 0, world_size: int = 1):
        if not isinstance(table, TokenTable):
            raise ValueError(f"table must be a TokenTable, got {type(table).__name__}")
        super().__init__(batch_size, shuffle, drop_last, seed, num_threads, prefetch, device, rank, world_size)
        self.nodes = _node_ids("nodes", nodes, table.num_nodes)
        self.num_items = self.nodes.numel()
        self.table = table
        self.labels = _check_table("labels", labels, table.num_nodes)

    def iterate(self, epoch: int, *, round: int = 0):
        return super().iterate(epoch, round=round)

    def _prepare(self, work) -> TokenBatch:
        _, _, positions, options = work
        nodes = self.nodes[self._share(positions)]
        tokens, mask = self.table.gather(nodes, device=self.device, round=options["round"])
        return TokenBatch(nodes.to(self.device), tokens, mask, self._gather(self.labels, nodes))
