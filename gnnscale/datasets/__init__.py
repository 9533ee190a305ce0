"""Dataset readers and generators; ``load_dataset(name)`` is the entry point."""
from .base import LinkDataset, NodeDataset, TemporalDataset, data_root
from .edge_list import EdgeList, read_edge_list
from .registry import known_datasets, load_dataset, load_file
from .prepare import prepare_dataset, write_synthetic
from .saved import open_dataset, save_dataset, verify_dataset
from .synthetic import PRESETS, generate_preset, generate_synthetic

__all__ = [
    "EdgeList",
    "LinkDataset",
    "NodeDataset",
    "PRESETS",
    "TemporalDataset",
    "data_root",
    "generate_preset",
    "generate_synthetic",
    "known_datasets",
    "load_dataset",
    "load_file",
    "open_dataset",
    "prepare_dataset",
    "read_edge_list",
    "save_dataset",
    "verify_dataset",
    "write_synthetic",
]
