"""Full-graph node classification: every epoch runs the model on the whole graph at once.

Fits graphs whose activations fit in memory (Planetoid, small synthetic graphs); mini-batch
training on sampled neighbourhoods is the path for larger ones.
"""
from dataclasses import dataclass, field
from typing import Dict, List

import torch
from torch.nn import functional as F

from ..datasets.base import NodeDataset
from ..graph import Graph
from ..nn import GNNEncoder
from .loop import EpochTrainer, dataset_summary
from .node_trainer import check_node_dataset, split_accuracy


@dataclass
class FullGraphResult:
    model: GNNEncoder
    best_epoch: int
    accuracy: Dict[str, float]  # train / valid / test accuracy of the best-validation epoch
    seconds_per_epoch: float
    history: List[Dict[str, float]] = field(default_factory=list)


def full_graph_adjacency(graph: Graph, kind: str, device: torch.device) -> torch.Tensor:
    """What an encoder of ``kind`` aggregates the whole graph over: a sparse CSR ``adj_t`` (row v:
    the sources of edges into v), which PyG's SAGE/GCN layers reduce with one sparse-dense product
    instead of a gather and a scatter; GAT, which weighs each edge, gets the ``edge_index``."""
    if kind == "gat":
        return graph.edge_index().to(device)
    return graph.csc().sparse_csr(device=device)


class FullGraphTrainer(EpochTrainer):
    """One optimisation step per epoch on the whole graph; the shared epoch loop evaluates every
    epoch, keeps the best-validation parameters and stops after ``patience`` epochs without a gain."""

    def __init__(self, dataset: NodeDataset, model: str, *, hidden: int, num_layers: int, dropout: float,
                 lr: float, weight_decay: float, epochs: int, patience: int, seed: int, device: str,
                 progress: bool):
        check_node_dataset(dataset)
        super().__init__(epochs=epochs, eval_every=1, patience=patience, seed=seed, device=device,
                         checkpoint_dir=None, resume=False, log_path=None, plot_path=None, progress=progress)
        self.dataset = dataset
        self.x = dataset.features.to(self.device)
        self.labels = dataset.labels.to(self.device)
        self.splits = {name: index.to(self.device) for name, index in dataset.splits.items()}
        self.adjacency = full_graph_adjacency(dataset.graph, model, self.device)
        self.model = self.modules = GNNEncoder(model, self.x.size(1), hidden, dataset.num_classes, num_layers,
                                               dropout).to(self.device)
        self.name = f"{model} on {dataset.name}"
        self.run_settings = {"dataset": dataset_summary(dataset), "kind": model, "dropout": dropout}
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)

    def _train_epoch(self, epoch: int):
        self.model.train()
        self.optimizer.zero_grad()
        train = self.splits["train"]
        # index_select keeps the backward's accumulation order fixed (advanced indexing's is not).
        logits = self.model(self.x, self.adjacency).index_select(0, train)
        loss = F.cross_entropy(logits, self.labels[train])
        loss.backward()
        self.optimizer.step()
        return self.loss_value(loss, epoch, 1, 1), train.numel()

    def evaluate(self) -> Dict[str, float]:
        self.model.eval()
        with torch.no_grad():
            return split_accuracy(self.model(self.x, self.adjacency), self.labels, self.splits,
                                  self.dataset.name)


def train_full_graph(
    dataset: NodeDataset,
    model: str = "sage",
    *,
    hidden: int = 128,
    num_layers: int = 2,
    dropout: float = 0.5,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    epochs: int = 100,
    patience: int = 50,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> FullGraphResult:
    """Trains a GNN encoder for single-label node classification, keeping the parameters of the
    epoch with the best validation accuracy (stopping after ``patience`` epochs without a gain)."""
    trainer = FullGraphTrainer(dataset, model, hidden=hidden, num_layers=num_layers, dropout=dropout, lr=lr,
                               weight_decay=weight_decay, epochs=epochs, patience=patience, seed=seed,
                               device=device, progress=progress)
    result = trainer.fit()
    return FullGraphResult(trainer.model, result.best_epoch, result.accuracy, result.seconds_per_epoch,
                           result.history)
