"""Synthetic node-classification graphs for scale work that needs no download.

The generator is a degree-corrected stochastic block model: every node gets a class (its
community) and a power-law weight; each edge picks its source by weight and, with probability
``homophily``, a target of the same class (else any node), again by weight. Features are a
class centroid plus Gaussian noise, so both features and neighbourhoods carry the label.
Everything is drawn in fixed-size chunks from generators seeded by (seed, chunk), so the output
depends on the seed alone, and memory stays at the size of the result.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ..graph import Graph
from .base import NodeDataset

_CHUNK = 1 << 22


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
    if num_nodes < num_classes or num_classes < 1:
        raise ValueError(f"need at least one node per class: num_nodes={num_nodes}, num_classes={num_classes}")
    if num_edges < 0 or num_features < 0:
        raise ValueError("num_edges and num_features must be non-negative")
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"homophily must lie in [0, 1], got {homophily}")
    if power_law_exponent <= 1.0:
        raise ValueError(f"power_law_exponent must exceed 1, got {power_law_exponent}")
    if len(split) != 3 or min(split) < 0 or sum(split) > 1 + 1e-9:
        raise ValueError(f"split must be three non-negative fractions summing to at most 1, got {split}")

    labels = _labels(num_nodes, num_classes, seed)
    # Nodes grouped by class, with the cumulative weight of that order: sampling a target inside a
    # class, or anywhere, is one binary search into this array.
    by_class = torch.argsort(labels, stable=True)
    weight = _power_law_weights(num_nodes, power_law_exponent, seed)[by_class]
    cumulative = torch.cumsum(weight, 0)
    class_end = torch.cumsum(torch.bincount(labels, minlength=num_classes), 0)
    class_weight_end = cumulative[class_end - 1]
    class_weight_start = torch.cat([class_weight_end.new_zeros(1), class_weight_end[:-1]])
    total = float(cumulative[-1])
    node_of_position = by_class.to(index_dtype)

    edge_index = torch.empty(2, num_edges, dtype=index_dtype)
    for chunk, start, end in _chunks(num_edges):
        gen = _generator(seed, 1, chunk)
        size = end - start
        src_pos = torch.searchsorted(cumulative, torch.rand(size, generator=gen, dtype=torch.float64) * total)
        src_pos.clamp_(max=num_nodes - 1)
        src_class = labels[by_class[src_pos]]
        same = torch.rand(size, generator=gen) < homophily
        low = torch.where(same, class_weight_start[src_class], 0.0)
        high = torch.where(same, class_weight_end[src_class], total)
        target = low + torch.rand(size, generator=gen, dtype=torch.float64) * (high - low)
        dst_pos = torch.searchsorted(cumulative, target).clamp_(max=num_nodes - 1)
        edge_index[0, start:end] = node_of_position[src_pos]
        edge_index[1, start:end] = node_of_position[dst_pos]
    graph = Graph.from_edge_index(
        edge_index, num_nodes, symmetrize=not directed, drop_self_loops=True, drop_duplicates=True,
        index_dtype=index_dtype,
    )
    del edge_index
    graph.edge_ids = None  # ids of generated edges carry no meaning; drop them to save memory

    return NodeDataset(
        name=name or "synthetic",
        graph=graph,
        features=_features(labels, num_features, num_classes, feature_signal, seed),
        labels=labels,
        splits=_splits(num_nodes, split, seed),
        num_classes=num_classes,
    )


def generate_preset(preset: str, *, scale: float = 1.0, seed: int = 0, **overrides) -> NodeDataset:
    """A graph shaped like an OGB dataset (``arxiv``, ``products``, ``papers100M``), with nodes and
    edges multiplied by ``scale`` (features, classes and split fractions kept)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; choose from {sorted(PRESETS)}")
    if scale <= 0:
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
    settings.update(overrides)
    return generate_synthetic(**settings)


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


def _features(labels, num_features, num_classes, signal, seed) -> torch.Tensor:
    centroids = torch.randn(num_classes, num_features, generator=_generator(seed, 4, 0))
    features = torch.empty(labels.numel(), num_features)
    for chunk, start, end in _chunks(labels.numel()):
        noise = torch.randn(end - start, num_features, generator=_generator(seed, 5, chunk))
        features[start:end] = noise.add_(centroids[labels[start:end]], alpha=signal)
    return features


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
