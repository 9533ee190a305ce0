"""Full-graph training: every step runs the model on the whole graph at once.

Fits graphs whose activations fit in memory (Planetoid, small synthetic graphs, ogbl-ddi's link
prediction); mini-batch training on sampled neighbourhoods is the path for larger ones.
"""
from typing import Dict, Optional

import torch
from torch import nn
from torch.nn import functional as F

from ..datasets.base import NodeDataset
from ..graph import Graph
from ..nn import GNNEncoder
from .config import FullGraphConfig, LoopConfig, OptimizerConfig, make_config
from .node import check_node_dataset, split_accuracy
from .trainer import Task, dataset_summary, model_summary


def full_graph_adjacency(graph: Graph, kind: Optional[str], device: torch.device) -> torch.Tensor:
    """What an encoder of ``kind`` aggregates the whole graph over: a sparse CSR ``adj_t`` (row v:
    the sources of edges into v), which PyG's SAGE/GCN layers reduce with one sparse-dense product
    instead of a gather and a scatter; GAT, which weighs each edge, and models other than
    gnnscale's encoders (``kind`` None) get the ``edge_index``."""
    if kind in (None, "gat"):
        return graph.edge_index().to(device)
    return graph.csc().sparse_csr(device=device)


class FullGraphNodeTask(Task):
    """Node classification with one optimisation step per epoch on the whole graph (Planetoid,
    small synthetic graphs); evaluation every epoch, early stopping after 50 epochs without a
    gain. Options: :class:`FullGraphConfig`."""

    data_parallel = False  # one step per epoch over the whole graph: nothing to share out

    metric = "accuracy"
    unit = "seed nodes"
    default_loop = LoopConfig(epochs=100, patience=50)
    default_optimizer = OptimizerConfig(lr=0.01, weight_decay=5e-4)

    def __init__(self, dataset: NodeDataset, model: str = "sage", *, config: Optional[FullGraphConfig] = None,
                 **options):
        check_node_dataset(dataset)
        self.config = make_config(FullGraphConfig, config, options, "FullGraphNodeTask")
        self.dataset, self.kind = dataset, model
        self.name = f"{model} on {dataset.name} (full graph)"

    def build(self, device: torch.device, seed: int) -> nn.Module:
        dataset, config = self.dataset, self.config
        self.x = dataset.features.to(device)
        self.labels = dataset.labels.to(device)
        self.splits = {name: index.to(device) for name, index in dataset.splits.items()}
        self.adjacency = full_graph_adjacency(dataset.graph, self.kind, device)
        self.model = GNNEncoder(self.kind, self.x.size(1), config.hidden, dataset.num_classes, config.num_layers,
                                config.dropout).to(device)
        return self.model

    def settings(self) -> Dict:
        return {"dataset": dataset_summary(self.dataset), "model": model_summary(self.model),
                "dropout": self.config.dropout}

    def batches(self, epoch: int):
        return [None]  # the whole graph, once

    def num_batches(self) -> int:
        return 1

    def loss(self, batch):
        train = self.splits["train"]
        # index_select keeps the backward's accumulation order fixed (advanced indexing's is not).
        logits = self.model(self.x, self.adjacency).index_select(0, train)
        return F.cross_entropy(logits.float(), self.labels[train]), train.numel()

    def evaluate(self) -> Dict[str, float]:
        return split_accuracy(self.model(self.x, self.adjacency), self.labels, self.splits, self.dataset.name)
