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

    @property
    def num_features(self) -> int:
        return 0 if self.features is None else self.features.size(1)


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

    @property
    def graph(self) -> Graph:
        """Events as a directed graph with ``edge_time`` (edge ids are event indices)."""
        return Graph.from_edge_index(torch.stack([self.src, self.dst]), self.num_nodes, edge_time=self.t)
