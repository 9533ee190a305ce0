"""Training and evaluation of memory-based dynamic GNNs on a temporal link-prediction stream.

The protocol of TGN: events split chronologically 70/15/15; for the inductive setting a share of
the nodes that appear in validation or test (10%) is held out, and every training event touching
them is dropped. Each epoch starts from empty memory and streams the training events in temporal
batches; evaluation streams on through validation and test (updating memory, not parameters) and
scores each positive event against one seeded random negative destination: average precision and
ROC AUC on all events (transductive) and on the events with a held-out node (inductive), plus,
on request, TGB-style MRR of each positive among many negatives.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Optional, Union

import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch.nn import functional as F

from ..datasets.base import TemporalDataset
from ..nn.temporal_model import TemporalLinkModel, TemporalModelConfig
from ..temporal_graph import TemporalGraph
from .loop import EpochTrainer, TrainResult

EVAL_SEED_OFFSET = 7919


class TemporalTrainer(EpochTrainer):
    """Trains a :class:`TemporalLinkModel` (``model='tgn'`` or ``'jodie'``; ``pres=True`` adds
    PRES) on a :class:`TemporalDataset`. Model options (memory_dim, num_neighbors, aggregator, ...)
    are passed through to :class:`TemporalModelConfig`."""

    def __init__(self, dataset: TemporalDataset, model: str = "tgn", *, batch_size: int = 200, lr: float = 1e-3,
                 epochs: int = 5, eval_every: int = 1, patience: Optional[int] = None,
                 new_node_fraction: float = 0.1, mrr_negatives: int = 0, eval_batch_size: Optional[int] = None,
                 seed: int = 0, device: str = "cpu", state_device=None, checkpoint_dir: Optional[Union[str, Path]] = None,
                 resume: bool = False, log_path=None, plot_path=None, progress: bool = True, **model_options):
        for split in ("train", "valid", "test"):
            if split not in dataset.splits or dataset.splits[split].numel() == 0:
                raise ValueError(f"{dataset.name}: the event stream has no {split!r} split")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0.0 <= new_node_fraction < 1.0:
            raise ValueError(f"new_node_fraction must be in [0, 1), got {new_node_fraction}")
        super().__init__(epochs=epochs, eval_every=eval_every, patience=patience, seed=seed, device=device,
                         checkpoint_dir=checkpoint_dir, resume=resume, log_path=log_path, plot_path=plot_path,
                         progress=progress)
        self.dataset, self.batch_size = dataset, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.mrr_negatives = mrr_negatives
        self.name = f"{model}{'+pres' if model_options.get('pres') else ''} {dataset.name} batch {batch_size}"
        self._split_events(new_node_fraction)
        events = torch.cat([self.train_events, dataset.splits["valid"], dataset.splits["test"]])
        self.graph = TemporalGraph.from_dataset(dataset, events)
        if model == "jodie" and "time_scale" not in model_options:
            model_options["time_scale"] = _mean_revisit_gap(TemporalGraph.from_dataset(dataset, self.train_events))
        config = TemporalModelConfig(model=model, seed=seed, **model_options)
        self.run_settings = {
            "dataset": {"name": dataset.name, "nodes": dataset.num_nodes, "events": dataset.num_events},
            "batch_size": batch_size, "new_node_fraction": new_node_fraction,
            # Evaluation streams on in batches: their size changes the scores.
            "eval_batch_size": self.eval_batch_size, "mrr_negatives": mrr_negatives, "config": config}
        self.model = TemporalLinkModel(self.graph, config, device=device, state_device=state_device)
        self.modules = self.model
        # One fused step over all parameters: with about twenty small tensors, the per-tensor loop
        # of the default implementation costs more than the arithmetic.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, fused=True)
        self.train_destinations = torch.unique(self.graph.dst[:self.num_train])
        self.all_destinations = torch.unique(dataset.dst)

    def _split_events(self, new_node_fraction: float) -> None:
        dataset = self.dataset
        later = torch.cat([dataset.splits["valid"], dataset.splits["test"]])
        later_nodes = torch.unique(torch.cat([dataset.src[later], dataset.dst[later]]))
        generator = torch.Generator().manual_seed(self.seed)
        count = int(new_node_fraction * later_nodes.numel())
        self.new_nodes = later_nodes[torch.randperm(later_nodes.numel(), generator=generator)[:count]]
        train = dataset.splits["train"]
        touches_new = torch.isin(dataset.src[train], self.new_nodes) | torch.isin(dataset.dst[train], self.new_nodes)
        self.train_events = train[~touches_new]
        self.num_train = self.train_events.numel()
        self.num_valid = dataset.splits["valid"].numel()

    def _train_epoch(self, epoch: int):
        model = self.model
        model.train()
        model.reset_state()
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        total, batches = 0.0, 0
        num_batches = -(-self.num_train // self.batch_size)
        for begin in range(0, self.num_train, self.batch_size):
            event_ids = torch.arange(begin, min(begin + self.batch_size, self.num_train))
            negatives = self.train_destinations[
                torch.randint(self.train_destinations.numel(), (event_ids.numel(),), generator=generator)]
            out = model(self.graph.src[event_ids], self.graph.dst[event_ids], self.graph.t[event_ids], event_ids,
                        negatives)
            loss = F.binary_cross_entropy_with_logits(out.positive, torch.ones_like(out.positive)) + \
                F.binary_cross_entropy_with_logits(out.negative, torch.zeros_like(out.negative)) + out.auxiliary_loss
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            model.commit(out)
            batches += 1
            total += self.loss_value(loss.detach(), epoch, batches, num_batches)
        return total / max(batches, 1), self.num_train

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        """Streams validation then test after the training events (memory from training kept)."""
        model = self.model
        model.eval()
        generator = torch.Generator().manual_seed(self.seed + EVAL_SEED_OFFSET)
        metrics: Dict[str, float] = {}
        start = self.num_train
        for split, count in (("valid", self.num_valid), ("test", self.graph.num_events - self.num_train - self.num_valid)):
            scores = self._stream(torch.arange(start, start + count), generator, mrr=split == "test")
            metrics.update(_link_metrics(split, *scores))
            start += count
        return metrics

    def _stream(self, event_ids: torch.Tensor, generator: torch.Generator, mrr: bool):
        model, graph = self.model, self.graph
        positive, negative, inductive, reciprocal = [], [], [], []
        for begin in range(0, event_ids.numel(), self.eval_batch_size):
            ids = event_ids[begin:begin + self.eval_batch_size]
            src, dst, t = graph.src[ids], graph.dst[ids], graph.t[ids]
            count = 1 + (self.mrr_negatives if mrr else 0)
            negatives = self.all_destinations[
                torch.randint(self.all_destinations.numel(), (ids.numel(), count), generator=generator)]
            out = model(src, dst, t, ids, negatives)
            positive.append(out.positive.cpu())
            negative.append(out.negative[:, 0].cpu())
            inductive.append(torch.isin(src, self.new_nodes) | torch.isin(dst, self.new_nodes))
            if count > 1:
                others = out.negative[:, 1:]
                rank = 1 + (others > out.positive.unsqueeze(1)).sum(1) + 0.5 * (others == out.positive.unsqueeze(1)).sum(1)
                reciprocal.append((1.0 / rank).cpu())
            model.commit(out)
        return (torch.cat(positive), torch.cat(negative), torch.cat(inductive),
                torch.cat(reciprocal) if reciprocal else None)

    def fit(self) -> TrainResult:
        """Trains, keeps the best parameters, then replays the whole stream with them so the
        memory is ready for :meth:`TemporalLinkModel.embed` / ``score`` / ``save``."""
        result = super().fit()
        self.replay_stream()
        return result

    @torch.no_grad()
    def replay_stream(self) -> float:
        """Rebuilds the state from all events with the current parameters; returns events/s."""
        self.model.eval()
        self.model.reset_state()
        start = time.perf_counter()
        for begin in range(0, self.graph.num_events, self.eval_batch_size):
            self.model.replay(torch.arange(begin, min(begin + self.eval_batch_size, self.graph.num_events)))
        return self.graph.num_events / (time.perf_counter() - start)


def _mean_revisit_gap(graph: TemporalGraph) -> float:
    """Mean time between consecutive interactions of the same node (JODIE's time unit)."""
    csr = graph.csr()
    same_node = torch.ones(csr.edge_times.numel(), dtype=torch.bool)
    same_node[csr.indptr[:-1][csr.indptr[:-1] < csr.edge_times.numel()]] = False
    gaps = (csr.edge_times[1:] - csr.edge_times[:-1])[same_node[1:]]
    return float(gaps.mean()) if gaps.numel() and float(gaps.mean()) > 0 else 1.0


def _link_metrics(split: str, positive, negative, inductive, reciprocal) -> Dict[str, float]:
    def scores(mask):
        labels = torch.cat([torch.ones(int(mask.sum())), torch.zeros(int(mask.sum()))]).numpy()
        values = torch.cat([positive[mask], negative[mask]]).numpy()
        return average_precision_score(labels, values), roc_auc_score(labels, values)

    everything = torch.ones_like(inductive)
    metrics = {}
    metrics[split], metrics[f"{split}_auc"] = scores(everything)
    if bool(inductive.any()):
        metrics[f"{split}_inductive"], metrics[f"{split}_inductive_auc"] = scores(inductive)
    if reciprocal is not None:
        metrics[f"{split}_mrr"] = float(reciprocal.mean())
    return {name: float(value) for name, value in metrics.items()}
