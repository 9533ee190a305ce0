"""What a dataset reader returns, and where datasets live on disk."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from ..graph import Graph

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PathLike = Union[str, os.PathLike]


def data_root(root: Optional[PathLike] = None) -> Path:
    """The dataset folder: ``root`` if given, else ``$GNNSCALE_DATA``, else ``datasets/`` in the project."""
    if root is not None:
        return Path(root)
    if os.environ.get("GNNSCALE_DATA"):
        return Path(os.environ["GNNSCALE_DATA"])
    return PROJECT_ROOT / "datasets"


def cache_root() -> Path:
    """Writable folder for files derived from read-only datasets (``$GNNSCALE_CACHE`` or ~/.cache)."""
    return Path(os.environ.get("GNNSCALE_CACHE", Path.home() / ".cache" / "gnnscale"))


@dataclass
class NodeDataset:
    """A node-level task: graph, features ``[N, F]``, labels ``[N]`` (or ``[N, L]`` 0/1 if multilabel)
    and index splits ``{'train', 'valid', 'test'}`` (empty when the dataset defines none).
    ``num_classes`` left at 0 is counted from the labels (the largest label plus one; negative
    or NaN labels mark unlabelled nodes), the width of the labels when multilabel.
    ``feature_file``: the ``.npy`` file the features were opened from, when they were (what
    training reads through the disk tier, ``host_cache_gib``)."""

    name: str
    graph: Graph
    features: Optional[torch.Tensor]
    labels: Optional[torch.Tensor]
    splits: Dict[str, torch.Tensor] = field(default_factory=dict)
    num_classes: int = 0
    multilabel: bool = False
    feature_file: Optional[Path] = None

    def __post_init__(self):
        if not self.num_classes and isinstance(self.labels, torch.Tensor) and self.labels.numel():
            self.num_classes = _count_classes(self.labels, self.multilabel)

    @property
    def num_features(self) -> int:
        return 0 if self.features is None else self.features.size(1)


def _count_classes(labels: torch.Tensor, multilabel: bool) -> int:
    if multilabel:
        return labels.size(1) if labels.dim() == 2 else 1
    labelled = labels[~torch.isnan(labels)] if labels.is_floating_point() else labels
    return int(labelled.max()) + 1 if labelled.numel() and labelled.max() >= 0 else 0


@dataclass
class LinkDataset:
    """A link-prediction task in OGB's layout: ``edge_split[split]['edge']`` is ``[M, 2]``, with
    ``'edge_neg'`` negatives for valid/test. ``graph`` holds the training edges (both directions);
    ``feature_file`` is as :class:`NodeDataset`'s."""

    name: str
    graph: Graph
    features: Optional[torch.Tensor]
    edge_split: Dict[str, Dict[str, torch.Tensor]]
    metric: str = ""
    feature_file: Optional[Path] = None

    @property
    def num_features(self) -> int:
        return 0 if self.features is None else self.features.size(1)


@dataclass
class TemporalDataset:
    """A stream of timestamped events ``src -> dst`` at ``t`` (sorted by time), with optional
    per-event features and labels, and chronological splits of event indices."""

    name: str
    src: torch.Tensor
    dst: torch.Tensor
    t: torch.Tensor
    edge_features: Optional[torch.Tensor]
    labels: Optional[torch.Tensor]
    num_nodes: int
    splits: Dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_events(self) -> int:
        return self.src.numel()

    def first(self, count: int) -> "TemporalDataset":
        """The first ``count`` events, split again chronologically (70/15/15): a quick run on the
        start of a long stream. The whole dataset when it holds no more than ``count`` events."""
        from .jodie import chronological_splits  # jodie builds on this module

        if isinstance(count, bool) or not isinstance(count, int) or count < 10:
            raise ValueError(f"a temporal dataset's first events: at least 10, got {count!r}")
        if count >= self.num_events:
            return self
        head = lambda values: None if values is None else values[:count]  # noqa: E731
        return TemporalDataset(name=f"{self.name}-first{count}", src=self.src[:count], dst=self.dst[:count],
                               t=self.t[:count], edge_features=head(self.edge_features), labels=head(self.labels),
                               num_nodes=self.num_nodes, splits=chronological_splits(count))

    @property
    def graph(self) -> Graph:
        """Events as a directed graph with ``edge_time`` (edge ids are event indices)."""
        return Graph.from_edge_index(torch.stack([self.src, self.dst]), self.num_nodes, edge_time=self.t)
