"""Synthetic node-classification graphs for scale work that needs no download.

The generator is a degree-corrected stochastic block model: every node gets a class (its
community) and a power-law weight; each edge picks its source by weight and, with probability
``homophily``, a target of the same class (else any node), again by weight. Features are a
class centroid plus Gaussian noise, so both features and neighbourhoods carry the label.
Everything is drawn in fixed-size chunks from generators seeded by (seed, chunk), so the output
depends on the seed alone, and memory stays at the size of the result.
"""
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch

from ..graph import Graph
from .base import NodeDataset

_CHUNK = 1 << 22
_FEATURE_ROWS = 1 << 16  # rows of features drawn at once (a multiple of 16)


@dataclass(frozen=True)
class Preset:
    num_nodes: int
    num_edges: int  # undirected edges for undirected presets
    num_features: int
    num_classes: int
    directed: bool
    split: Tuple[float, float, float]  # fractions of nodes in train / valid / test


# Shapes of the OGB node-property datasets (sizes and split fractions as published by OGB).
PRESETS = {
    "arxiv": Preset(169_343, 1_166_243, 128, 40, True, (0.537, 0.176, 0.287)),
    "products": Preset(2_449_029, 61_859_140, 100, 47, False, (0.0803, 0.0161, 0.9036)),
    "papers100M": Preset(111_059_956, 1_615_685_872, 128, 172, True, (0.0109, 0.0011, 0.0019)),
}


def _generator(seed: int, stream: int, chunk: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + stream) * 1_000_003 + chunk)


def _chunks(total: int):
    for index, start in enumerate(range(0, total, _CHUNK)):
        yield index, start, min(total, start + _CHUNK)


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything a synthetic dataset is drawn from; its parts come out in chunks, so that a
    dataset can be built in memory (:func:`generate_synthetic`) or written to disk piece by piece
    (:func:`gnnscale.datasets.prepare.write_synthetic`) with the same result."""
    num_nodes: int
    num_edges: int
    num_features: int = 64
    num_classes: int = 10
    directed: bool = False
    homophily: float = 0.6
    power_law_exponent: float = 2.2
    feature_signal: float = 0.1
    split: Tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0
    index_dtype: torch.dtype = torch.int64
    name: Optional[str] = None

    def __post_init__(self):
        if self.num_nodes < self.num_classes or self.num_classes < 1:
            raise ValueError(f"need at least one node per class: num_nodes={self.num_nodes}, "
                             f"num_classes={self.num_classes}")
        if self.num_edges < 0 or self.num_features < 0:
            raise ValueError("num_edges and num_features must be non-negative")
        if not 0.0 <= self.homophily <= 1.0:
            raise ValueError(f"homophily must lie in [0, 1], got {self.homophily}")
        if self.power_law_exponent <= 1.0:
            raise ValueError(f"power_law_exponent must exceed 1, got {self.power_law_exponent}")
        if len(self.split) != 3 or min(self.split) < 0 or sum(self.split) > 1 + 1e-9:
            raise ValueError(f"split must be three non-negative fractions summing to at most 1, got {self.split}")

    @property
    def dataset_name(self) -> str:
        return self.name or "synthetic"

    def labels(self) -> torch.Tensor:
        return _labels(self.num_nodes, self.num_classes, self.seed)

    def edge_chunks(self, labels: torch.Tensor) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """(sources, targets) of the drawn edges, chunk by chunk, before self-loops and repeats are
        dropped. The sampling tables (three arrays per node) live while the chunks are drawn."""
        return _edge_chunks(self, labels)

    def feature_chunks(self, labels: torch.Tensor) -> Iterator[torch.Tensor]:
        """The feature rows of consecutive nodes, chunk by chunk."""
        centroids = torch.randn(self.num_classes, self.num_features, generator=_generator(self.seed, 4, 0))
        for chunk, start, end in _chunks(labels.numel()):
            gen = _generator(self.seed, 5, chunk)
            for low, high in _row_blocks(start, end, self.num_features):
                noise = torch.randn(high - low, self.num_features, generator=gen)
                yield noise.add_(centroids[labels[low:high]], alpha=self.feature_signal)

    def splits(self) -> Dict[str, torch.Tensor]:
        return _splits(self.num_nodes, self.split, self.seed)

    def graph_options(self) -> dict:
        """How the drawn edges become the graph (the options of ``Graph.from_edge_index``)."""
        return dict(symmetrize=not self.directed, drop_self_loops=True, drop_duplicates=True,
                    index_dtype=self.index_dtype)


def generate_synthetic(
    num_nodes: int,
    num_edges: int,
    num_features: int = 64,
    num_classes: int = 10,
    *,
    directed: bool = False,
    homophily: float = 0.6,
    power_law_exponent: float = 2.2,
    feature_signal: float = 0.1,
    split: Tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    index_dtype: torch.dtype = torch.int64,
    name: Optional[str] = None,
) -> NodeDataset:
    """Generates about ``num_edges`` edges (self-loops and repeats are dropped) on ``num_nodes``
    nodes; for ``directed=False`` each edge is stored in both directions."""
    spec = SyntheticSpec(num_nodes, num_edges, num_features, num_classes, directed, homophily, power_law_exponent,
                         feature_signal, tuple(split), seed, index_dtype, name)
    return generate_from_spec(spec)


def generate_from_spec(spec: SyntheticSpec) -> NodeDataset:
    """The dataset of ``spec``, built in memory."""
    labels = spec.labels()
    edge_index = torch.empty(2, spec.num_edges, dtype=spec.index_dtype)
    start = 0
    for src, dst in spec.edge_chunks(labels):
        edge_index[0, start:start + src.numel()] = src
        edge_index[1, start:start + src.numel()] = dst
        start += src.numel()
    graph = Graph.from_edge_index(edge_index, spec.num_nodes, **spec.graph_options())
    del edge_index
    graph.edge_ids = None  # ids of generated edges carry no meaning; drop them to save memory
    features = torch.empty(spec.num_nodes, spec.num_features)
    start = 0
    for rows in spec.feature_chunks(labels):
        features[start:start + rows.size(0)] = rows
        start += rows.size(0)
    return NodeDataset(name=spec.dataset_name, graph=graph, features=features, labels=labels, splits=spec.splits(),
                       num_classes=spec.num_classes)


def preset_spec(preset: str, *, scale: float = 1.0, seed: int = 0, **overrides) -> SyntheticSpec:
    """The spec of a graph shaped like an OGB dataset, with nodes and edges multiplied by ``scale``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; choose from {sorted(PRESETS)}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    shape = PRESETS[preset]
    settings = dict(
        num_nodes=max(shape.num_classes, int(round(shape.num_nodes * scale))),
        num_edges=int(round(shape.num_edges * scale)),
        num_features=shape.num_features,
        num_classes=shape.num_classes,
        directed=shape.directed,
        split=shape.split,
        seed=seed,
        name=f"synthetic-{preset}",
    )
    unknown = sorted(set(overrides) - set(settings) - {"homophily", "power_law_exponent", "feature_signal",
                                                        "index_dtype"})
    if unknown:
        raise ValueError(f"unknown synthetic settings {unknown}")
    settings.update(overrides)
    settings["split"] = tuple(settings["split"])
    return SyntheticSpec(**settings)


def generate_preset(preset: str, *, scale: float = 1.0, seed: int = 0, **overrides) -> NodeDataset:
    """A graph shaped like an OGB dataset (``arxiv``, ``products``, ``papers100M``), with nodes and
    edges multiplied by ``scale`` (features, classes and split fractions kept)."""
    return generate_from_spec(preset_spec(preset, scale=scale, seed=seed, **overrides))


def _edge_chunks(spec: SyntheticSpec, labels: torch.Tensor) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    num_nodes, seed = spec.num_nodes, spec.seed
    # Nodes grouped by class, with the cumulative weight of that order: sampling a target inside a
    # class, or anywhere, is one binary search into this array.
    by_class = _stable_order(labels, spec.num_classes)
    cumulative = _power_law_weights(num_nodes, spec.power_law_exponent, seed)[by_class]
    cumulative.cumsum_(0)
    class_end = torch.cumsum(torch.bincount(labels, minlength=spec.num_classes), 0)
    class_weight_end = cumulative[class_end - 1]
    class_weight_start = torch.cat([class_weight_end.new_zeros(1), class_weight_end[:-1]])
    total = float(cumulative[-1])
    node_of_position = by_class.to(spec.index_dtype)
    for chunk, start, end in _chunks(spec.num_edges):
        gen = _generator(seed, 1, chunk)
        size = end - start
        src_pos = torch.searchsorted(cumulative, torch.rand(size, generator=gen, dtype=torch.float64) * total)
        src_pos.clamp_(max=num_nodes - 1)
        src_class = labels[by_class[src_pos]]
        same = torch.rand(size, generator=gen) < spec.homophily
        low = torch.where(same, class_weight_start[src_class], 0.0)
        high = torch.where(same, class_weight_end[src_class], total)
        target = low + torch.rand(size, generator=gen, dtype=torch.float64) * (high - low)
        dst_pos = torch.searchsorted(cumulative, target).clamp_(max=num_nodes - 1)
        yield node_of_position[src_pos], node_of_position[dst_pos]


def _row_blocks(start: int, end: int, width: int) -> Iterator[Tuple[int, int]]:
    """Rows [start, end) in blocks of _FEATURE_ROWS. torch draws normal values in groups of 16, so
    blocks of a multiple of 16 values drawn one after the other from one generator give the values
    one draw of all the rows gives, except for a last block of fewer than 16 values: that one joins
    the block before it."""
    bounds = list(range(start, end, _FEATURE_ROWS)) + [end]
    if len(bounds) > 2 and (bounds[-1] - bounds[-2]) * width < 16:
        del bounds[-2]
    return zip(bounds[:-1], bounds[1:])


def _stable_order(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``torch.argsort(labels, stable=True)``; for few classes by numpy's radix sort of 16-bit
    keys, which needs far less scratch memory for a hundred million nodes."""
    if num_classes <= np.iinfo(np.int16).max:
        return torch.from_numpy(np.argsort(labels.numpy().astype(np.int16), kind="stable"))
    return torch.argsort(labels, stable=True)


def _labels(num_nodes: int, num_classes: int, seed: int) -> torch.Tensor:
    # Class sizes fall off with rank, as in real label distributions.
    probability = 1.0 / torch.arange(1, num_classes + 1, dtype=torch.float64) ** 0.7
    cumulative = torch.cumsum(probability / probability.sum(), 0)
    labels = torch.empty(num_nodes, dtype=torch.int64)
    for chunk, start, end in _chunks(num_nodes):
        draw = torch.rand(end - start, generator=_generator(seed, 2, chunk), dtype=torch.float64)
        labels[start:end] = torch.searchsorted(cumulative, draw).clamp_(max=num_classes - 1)
    labels[:num_classes] = torch.arange(num_classes)  # every class occurs
    return labels


def _power_law_weights(num_nodes: int, exponent: float, seed: int) -> torch.Tensor:
    weight = torch.empty(num_nodes, dtype=torch.float64)
    for chunk, start, end in _chunks(num_nodes):
        uniform = torch.rand(end - start, generator=_generator(seed, 3, chunk), dtype=torch.float64)
        weight[start:end] = (1.0 - uniform) ** (-1.0 / (exponent - 1.0))  # Pareto, minimum 1
    # Cap hubs at sqrt(n) times the minimum, as real graphs' largest degrees stay far below n.
    return weight.clamp_(max=max(1.0, num_nodes ** 0.5))


def _splits(num_nodes: int, split, seed: int):
    order = torch.randperm(num_nodes, generator=_generator(seed, 6, 0))
    train_end = int(split[0] * num_nodes)
    valid_end = train_end + int(split[1] * num_nodes)
    test_end = valid_end + int(split[2] * num_nodes)
    return {
        "train": order[:train_end].sort().values,
        "valid": order[train_end:valid_end].sort().values,
        "test": order[valid_end:test_end].sort().values,
    }
