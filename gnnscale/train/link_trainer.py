"""Mini-batch link prediction: seed edges with sampled negatives, neighbourhoods of both
endpoints, a GNN encoder and an edge decoder; evaluation ranks each split's positive edges
against its negative edges (Hits@K), with ogb's Evaluator for OGB datasets."""
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F

from ..datasets.base import LinkDataset
from ..loader import EdgePairLoader, LinkLoader
from ..loader.loaders import check_num_threads
from ..nn import GNNEncoder, LinkPredictor
from ..storage import UnifiedTensor
from .full_graph import full_graph_adjacency
from .inference import layerwise_inference
from .loop import EpochTrainer, dataset_summary


def hits_at_k(positive: torch.Tensor, negative: torch.Tensor, k: int) -> float:
    """Share of positive scores above the k-th highest negative score (OGB's Hits@K)."""
    if negative.numel() < k:
        return 1.0
    threshold = torch.topk(negative, k).values[-1]
    return float((positive > threshold).float().mean())


class LinkTrainer(EpochTrainer):
    """Trains an encoder and a :class:`LinkPredictor` on a :class:`LinkDataset`.

    Nodes without features get a learned embedding of size ``hidden``, trained with the rest.
    The metric is the dataset's (``hits@K``; Hits@50 when it names none).

    ``fanouts`` gives one neighbour count per layer and trains on sampled neighbourhoods of each
    batch's endpoints. ``full_graph=True`` instead encodes the whole graph with full
    neighbourhoods at every step (``num_layers`` layers, ``len(fanouts)`` by default; one sparse
    product per layer), as OGB's full-batch examples do: the choice for small dense graphs such
    as ogbl-ddi, where a sample of 20 out of ~500 neighbours loses the signal. ``grad_clip`` caps
    each module's gradient norm at every step. ``corrupt``: how negatives are drawn ('target': the
    positive's source with a drawn target; 'both': random non-edges, as OGB's examples train).
    """

    def __init__(self, dataset: LinkDataset, model: Union[str, GNNEncoder] = "sage", *,
                 fanouts: Sequence[int] = (10, 10), full_graph: bool = False, num_layers: Optional[int] = None,
                 batch_size: int = 4096, hidden: int = 256,
                 dropout: float = 0.5, lr: float = 0.005, predictor_layers: int = 3, epochs: int = 20,
                 eval_every: int = 1, grad_clip: Optional[float] = None,
                 patience: Optional[int] = None, num_negatives: int = 1, negative: str = "uniform",
                 corrupt: str = "target",
                 eval_batch_size: int = 8192, seed: int = 0, device: str = "cpu", num_threads: int = 1,
                 checkpoint_dir: Optional[Union[str, Path]] = None, resume: bool = False,
                 log_path=None, plot_path=None, progress: bool = True, precision: str = "fp32"):
        for split in ("train", "valid", "test"):
            if split not in dataset.edge_split:
                raise ValueError(f"{dataset.name}: edge_split has no {split!r} part")
        for split in ("valid", "test"):
            if "edge_neg" not in dataset.edge_split[split]:
                raise ValueError(f"{dataset.name}: the {split!r} split has no negative edges to rank against")
        check_num_threads(num_threads)
        super().__init__(epochs=epochs, eval_every=eval_every, patience=patience, seed=seed, device=device,
                         checkpoint_dir=checkpoint_dir, resume=resume, log_path=log_path, plot_path=plot_path,
                         progress=progress, precision=precision)
        self.dataset = dataset
        self.eval_batch_size = eval_batch_size
        metric = dataset.metric or "hits@50"
        if not metric.startswith("hits@"):
            raise ValueError(f"{dataset.name}: metric {metric!r} is not a Hits@K metric")
        self.metric, self.k = metric, int(metric.split("@")[1])
        if num_layers is not None and not full_graph:
            raise ValueError("num_layers applies to full_graph=True; sampled training has one layer per fanout")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be positive, got {grad_clip}")
        self.grad_clip = grad_clip
        num_layers = num_layers or len(fanouts)
        graph = dataset.graph
        self.modules = nn.ModuleDict()
        if dataset.features is None:
            self.modules["embedding"] = nn.Embedding(graph.num_nodes, hidden)
            # Glorot-scaled, as OGB's reference examples start it: N(0, 1) rows are ~16x larger
            # at width 256 and saturate the decoder's first updates.
            nn.init.xavier_uniform_(self.modules["embedding"].weight)
            in_dim = hidden
        else:
            self.features = UnifiedTensor(dataset.features)
            in_dim = dataset.num_features
        if isinstance(model, str):
            # Learned embeddings are not dropped on the way in, as in OGB's examples.
            model = GNNEncoder(model, in_dim, hidden, hidden, num_layers, dropout,
                               input_dropout=dataset.features is not None)
        self.modules["encoder"] = model
        self.modules["predictor"] = LinkPredictor(model.convs[-1].out_channels, hidden, predictor_layers,
                                                   dropout=dropout)
        self.modules.to(self.device)
        self.name = f"{model.kind} link prediction on {dataset.name}"
        self.run_settings = {
            "dataset": dataset_summary(dataset), "kind": model.kind, "full_graph": full_graph,
            "fanouts": None if full_graph else list(fanouts), "batch_size": batch_size, "dropout": dropout,
            "grad_clip": grad_clip, "num_negatives": num_negatives, "negative": negative, "corrupt": corrupt}
        self.optimizer = torch.optim.Adam(self.modules.parameters(), lr=lr)
        train_edges = dataset.edge_split["train"]["edge"].to(torch.int64).t()
        # Train Hits@K as OGB's examples report it: as many train edges as validation edges,
        # ranked against the validation negatives.
        count = min(train_edges.size(1), dataset.edge_split["valid"]["edge"].size(0))
        chosen = torch.randperm(train_edges.size(1), generator=torch.Generator().manual_seed(seed))[:count]
        self.train_eval_edges = train_edges[:, chosen].t()
        # Every node's inputs at every full-graph step: features are moved to the device once.
        self.all_features = (dataset.features.to(self.device).float()
                             if full_graph and dataset.features is not None else None)
        if full_graph:
            self.adjacency = full_graph_adjacency(graph, model.kind, self.device)
            self.loader = EdgePairLoader(graph, train_edges, batch_size, negative=negative,
                                         num_negatives=num_negatives, corrupt=corrupt, seed=seed,
                                         num_threads=num_threads, device=self.device)
        else:
            self.adjacency = None
            self.loader = LinkLoader(graph, None if dataset.features is None else self.features, train_edges,
                                     list(fanouts), batch_size, negative=negative, num_negatives=num_negatives,
                                     corrupt=corrupt, seed=seed, num_threads=num_threads, device=self.device)

    def _inputs(self, node: torch.Tensor, x: Optional[torch.Tensor]) -> torch.Tensor:
        if "embedding" in self.modules:
            return self.modules["embedding"](node.to(self.device))
        return x.float()

    def _encode_batch(self, batch) -> torch.Tensor:
        """Encoder output for the batch's nodes, rows indexed as ``batch.edge_label_index``."""
        encoder = self.modules["encoder"]
        if self.adjacency is not None:
            return encoder(self._all_inputs(), self.adjacency)
        sub = batch.subgraph
        return encoder(self._inputs(sub.node, batch.x), sub.edge_index, sub.num_sampled_nodes,
                       sub.num_sampled_edges)

    def _all_inputs(self) -> torch.Tensor:
        if "embedding" in self.modules:
            return self.modules["embedding"].weight
        return self.all_features

    def _train_epoch(self, epoch: int):
        self.modules.train()
        self.loader.epoch = epoch - 1  # batches depend on (seed, epoch, batch) only: resumable
        predictor = self.modules["predictor"]
        total_loss, total_edges = 0.0, 0
        for b, batch in enumerate(self.loader, start=1):
            self.optimizer.zero_grad()
            source, target = batch.edge_label_index
            with self.autocast():
                h = self._encode_batch(batch)
                # index_select, not h[source]: the backward of advanced indexing accumulates in a
                # thread-dependent order on the CPU, which would make runs unrepeatable.
                scores = predictor(h.index_select(0, source), h.index_select(0, target))
            loss = F.binary_cross_entropy_with_logits(scores.float(), batch.edge_label)
            loss.backward()
            if self.grad_clip is not None:  # per module (embedding, encoder, decoder), as OGB clips
                for module in self.modules.values():
                    nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
            self.optimizer.step()
            positives = int(batch.edge_label.sum())
            total_loss += self.loss_value(loss, epoch, b, len(self.loader)) * positives
            total_edges += positives
        return total_loss / total_edges, total_edges

    @torch.no_grad()
    def embeddings(self) -> torch.Tensor:
        """Encoder output of every node, by layer-wise full-neighbourhood inference."""
        self.modules.eval()
        features = self.modules["embedding"].weight.detach() if "embedding" in self.modules else self.features
        return layerwise_inference(self.modules["encoder"], self.dataset.graph, features, self.eval_batch_size,
                                   self.device)

    @torch.no_grad()
    def _scores(self, h: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        predictor = self.modules["predictor"].eval()
        edges = edges.to(torch.int64)
        out = [predictor(h[part[:, 0]].to(self.device), h[part[:, 1]].to(self.device)).cpu()
               for part in edges.split(self.eval_batch_size)]
        return torch.cat(out) if out else torch.empty(0)

    def evaluate(self) -> Dict[str, float]:
        h = self.embeddings()
        negatives = {split: self._scores(h, self.dataset.edge_split[split]["edge_neg"]) for split in ("valid", "test")}
        return {"train": self._hits(self._scores(h, self.train_eval_edges), negatives["valid"]),
                "valid": self._hits(self._scores(h, self.dataset.edge_split["valid"]["edge"]), negatives["valid"]),
                "test": self._hits(self._scores(h, self.dataset.edge_split["test"]["edge"]), negatives["test"])}

    def _hits(self, positive: torch.Tensor, negative: torch.Tensor) -> float:
        if self.dataset.name.startswith("ogbl-"):
            from ogb.linkproppred import Evaluator

            evaluator = Evaluator(self.dataset.name)
            return float(evaluator.eval({"y_pred_pos": positive, "y_pred_neg": negative})[self.metric])
        return hits_at_k(positive, negative, self.k)
