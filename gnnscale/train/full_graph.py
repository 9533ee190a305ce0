"""Full-graph node classification: every epoch runs the model on the whole graph at once.

Fits graphs whose activations fit in memory (Planetoid, small synthetic graphs); mini-batch
training on sampled neighbourhoods is the path for larger ones.
"""
import time
import warnings
from dataclasses import dataclass, field
from typing import Dict, List

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..datasets.base import NodeDataset
from ..graph import Graph
from ..nn import GNNEncoder


@dataclass
class FullGraphResult:
    model: GNNEncoder
    best_epoch: int
    accuracy: Dict[str, float]  # train / valid / test accuracy of the best-validation epoch
    seconds_per_epoch: float
    history: List[Dict[str, float]] = field(default_factory=list)


def transposed_adjacency(graph: Graph, device: torch.device) -> torch.Tensor:
    """Sparse CSR ``adj_t`` (row v: the sources of edges into v), which PyG's SAGE/GCN layers
    aggregate with one sparse-dense product instead of a gather and a scatter."""
    incoming = graph.csc()
    values = torch.ones(incoming.num_edges, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        # The CSR comes from a validated Graph, so torch's O(E) invariant check would be redundant.
        return torch.sparse_csr_tensor(incoming.indptr, incoming.indices.to(torch.int64), values,
                                       size=(graph.num_nodes, graph.num_nodes), check_invariants=False).to(device)


@torch.no_grad()
def _accuracy(logits: torch.Tensor, labels: torch.Tensor, splits: Dict[str, torch.Tensor]) -> Dict[str, float]:
    predicted = logits.argmax(dim=-1)
    return {name: float((predicted[index] == labels[index]).float().mean()) for name, index in splits.items()}


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
    if dataset.features is None or dataset.labels is None or dataset.multilabel:
        raise ValueError(f"{dataset.name}: full-graph training needs features and single-label classes")
    for split in ("train", "valid", "test"):
        if split not in dataset.splits or dataset.splits[split].numel() == 0:
            raise ValueError(f"{dataset.name}: the {split!r} split is empty")
    torch.manual_seed(seed)
    device = torch.device(device)
    x = dataset.features.to(device)
    labels = dataset.labels.to(device)
    splits = {name: index.to(device) for name, index in dataset.splits.items()}
    adjacency = (dataset.graph.edge_index().to(device) if model == "gat"
                 else transposed_adjacency(dataset.graph, device))
    network = GNNEncoder(model, x.size(1), hidden, dataset.num_classes, num_layers, dropout).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr, weight_decay=weight_decay)

    best = {"valid": -1.0}
    best_state, best_epoch, history = None, 0, []
    start = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc=f"{model} on {dataset.name}", disable=not progress)
    for epoch in bar:
        network.train()
        optimizer.zero_grad()
        # index_select keeps the backward's accumulation order fixed (advanced indexing's is not).
        logits = network(x, adjacency).index_select(0, splits["train"])
        loss = F.cross_entropy(logits, labels[splits["train"]])
        loss.backward()
        optimizer.step()
        network.eval()
        with torch.no_grad():
            accuracy = _accuracy(network(x, adjacency), labels, splits)
        history.append({"epoch": epoch, "loss": loss.item(), **accuracy})
        bar.set_postfix(loss=f"{loss.item():.3f}", valid=f"{accuracy['valid']:.3f}")
        if accuracy["valid"] > best["valid"]:
            best, best_epoch = accuracy, epoch
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    elapsed = time.perf_counter() - start
    network.load_state_dict(best_state)
    return FullGraphResult(network, best_epoch, best, elapsed / len(history), history)
