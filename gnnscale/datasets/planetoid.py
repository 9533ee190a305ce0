"""Planetoid citation graphs (Cora, CiteSeer, PubMed) from their raw ``ind.<name>.*`` files."""
from pathlib import Path

import torch

from ..graph import Graph
from .base import NodeDataset

PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
_RAW_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def planetoid_raw_dir(root: Path, name: str) -> Path:
    return root / "planetoid" / PLANETOID_NAMES[name] / "raw"


def load_planetoid(name: str, root: Path) -> NodeDataset:
    """Reads the public Planetoid split with PyG's own raw-file reader (no processing, no download)."""
    from torch_geometric.io import read_planetoid_data

    key = name.lower()
    raw_dir = planetoid_raw_dir(root, key)
    for suffix in _RAW_SUFFIXES:
        path = raw_dir / f"ind.{key}.{suffix}"
        if not path.is_file():
            raise FileNotFoundError(f"Planetoid file {path} is missing (expected the ind.{key}.* files in {raw_dir})")
    data = read_planetoid_data(str(raw_dir), key)
    graph = Graph.from_edge_index(data.edge_index, data.num_nodes)
    splits = {split: torch.nonzero(getattr(data, f"{mask}_mask")).flatten()
              for split, mask in (("train", "train"), ("valid", "val"), ("test", "test"))}
    return NodeDataset(
        name=PLANETOID_NAMES[key],
        graph=graph,
        features=data.x,
        labels=data.y,
        splits=splits,
        num_classes=int(data.y.max()) + 1,
    )
