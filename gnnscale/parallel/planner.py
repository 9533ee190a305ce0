"""Predicts the bytes each layout sends per training epoch, and picks a layout.

Per epoch, with N nodes, L graph layers of width d, S stages, P partitions and H the summed halo
sizes of a P-way partition (itemsize b bytes):

* activations: every node crosses each stage boundary once forward and once backward:
  ``2 (S - 1) N d b``;
* halo rows: each halo row is exchanged once per layer forward, and its gradient once backward:
  ``2 L H d b`` (zero for P = 1);
* gradients: each stage's parameters are all-reduced over its P replicas, a ring sending
  ``2 (P - 1) / P`` of them per rank.

Graph parallelism pays the halo term at every layer; the pipeline pays the activation term only
at S - 1 boundaries, so it wins when ``L H`` exceeds ``(S - 1) N``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

import torch

from ..graph import Graph
from ..nn.deep_gnn import DeepGNN
from .layout import normalized_adjacency, partition_graph
from .plan import partition_halos


@dataclass
class LayoutPrediction:
    stages: int
    partitions: int
    halo_rows: int
    bytes_per_epoch: Dict[str, int]
    peak_rank_bytes: int  # rough: history, activations, features and adjacency of the largest rank
    fits: bool

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_per_epoch.values())

    @property
    def kind(self) -> str:
        if self.partitions == 1:
            return "pipeline" if self.stages > 1 else "single"
        return "graph" if self.stages == 1 else "hybrid"

    def as_dict(self) -> Dict:
        return {**asdict(self), "kind": self.kind, "total_bytes": self.total_bytes}


def stage_parameter_bytes(num_features: int, hidden: int, num_classes: int, num_layers: int, stages: int, *,
                          conv: str = "gcn", norm: bool = False, itemsize: int = 4) -> List[int]:
    with torch.device("meta"):
        model = DeepGNN(num_features, hidden, num_classes, num_layers, conv=conv, norm=norm)
    return [sum(p.numel() for p in model.stage_parameters(stages, stage)) * itemsize for stage in range(stages)]


def predict_bytes(*, num_nodes: int, halo_rows: int, num_layers: int, hidden: int, stages: int, partitions: int,
                  parameter_bytes: List[int], itemsize: int = 4) -> Dict[str, int]:
    """Bytes sent per training epoch, summed over ranks, as the engine counts them."""
    return {
        "activations": 2 * (stages - 1) * num_nodes * hidden * itemsize,
        "halo": 2 * num_layers * halo_rows * hidden * itemsize if partitions > 1 else 0,
        "gradients": sum(partitions * (2 * (partitions - 1) * size // partitions) for size in parameter_bytes),
    }


def _peak_rank_bytes(graph: Graph, halo_sizes: List[int], layout, num_features: int, num_layers: int,
                     hidden: int, stages: int, itemsize: int = 4) -> int:
    layers_per_stage = -(-num_layers // stages)
    worst = 0
    for p, halo in enumerate(halo_sizes):
        own = int(layout.partition_offsets[p + 1] - layout.partition_offsets[p])
        local = own + halo
        edges = graph.num_edges * own // max(graph.num_nodes, 1)
        # history + saved activations per layer, input features, adjacency and its transpose
        worst = max(worst, (local * hidden * 3 * layers_per_stage + own * num_features) * itemsize + edges * 32)
    return worst


def plan_layouts(graph: Graph, world_size: int, *, num_features: int, num_classes: int, num_layers: int = 8,
                 hidden: int = 64, conv: str = "gcn", norm: bool = False, memory_budget: Optional[int] = None,
                 partitioner: str = "metis") -> List[LayoutPrediction]:
    """Every (stages x partitions = world_size) grid with at most one stage per layer, with its
    predicted traffic, sorted from least to most bytes; ``memory_budget`` (bytes per rank) marks
    the ones that fit."""
    if world_size < 1:
        raise ValueError(f"world_size must be positive, got {world_size}")
    predictions = []
    for stages in range(1, world_size + 1):
        if world_size % stages or stages > num_layers:
            continue
        partitions = world_size // stages
        layout = partition_graph(graph, partitions, partitioner=partitioner)
        adjacency = normalized_adjacency(graph, "gcn" if conv == "gcn" else "mean", layout)
        halo_sizes = [h.numel() for h in partition_halos(adjacency, layout)]
        parameter_bytes = stage_parameter_bytes(num_features, hidden, num_classes, num_layers, stages, conv=conv,
                                                norm=norm)
        traffic = predict_bytes(num_nodes=graph.num_nodes, halo_rows=sum(halo_sizes), num_layers=num_layers,
                                hidden=hidden, stages=stages, partitions=partitions, parameter_bytes=parameter_bytes)
        peak = _peak_rank_bytes(graph, halo_sizes, layout, num_features, num_layers, hidden, stages)
        predictions.append(LayoutPrediction(stages, partitions, sum(halo_sizes), traffic, peak,
                                            memory_budget is None or peak <= memory_budget))
    return sorted(predictions, key=lambda p: (not p.fits, p.total_bytes))


def choose_layout(predictions: List[LayoutPrediction]) -> LayoutPrediction:
    """The layout sending the fewest bytes among those that fit the memory budget."""
    fitting = [p for p in predictions if p.fits]
    if not fitting:
        smallest = min(predictions, key=lambda p: p.peak_rank_bytes)
        raise ValueError(f"no layout fits the memory budget; the smallest needs about "
                         f"{smallest.peak_rank_bytes / 2**30:.2f} GiB per rank "
                         f"({smallest.stages} stages x {smallest.partitions} partitions)")
    return min(fitting, key=lambda p: p.total_bytes)
