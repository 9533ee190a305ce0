"""Temporal link prediction with memory-based dynamic GNNs (TGN, JODIE, PRES) on an event stream.

The protocol of TGN: events split chronologically 70/15/15; for the inductive setting a share of
the nodes that appear in validation or test (10%) is held out, and every training event touching
them is dropped. Each epoch starts from empty memory and streams the training events in temporal
batches; evaluation streams on through validation and test (updating memory, not parameters) and
scores each positive event against one seeded random negative destination: average precision and
ROC AUC on all events (transductive) and on the events with a held-out node (inductive), plus,
on request, TGB-style MRR of each positive among many negatives.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Dict, Optional

import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn
from torch.nn import functional as F

from ..datasets.base import TemporalDataset
from ..loader.temporal import TemporalLoader
from ..nn.temporal_model import BatchOutput, TemporalLinkModel, TemporalModelConfig
from ..sampling.neighbor import mix_seed
from ..temporal_graph import TemporalGraph
from .config import LoopConfig, OptimizerConfig, TemporalConfig, field_names, make_config
from .trainer import Task

EVALUATION_STREAM = 7919  # mixed into the seed of the evaluation loaders' negatives
MODEL_OPTIONS = tuple(name for name in field_names(TemporalModelConfig) if name not in ("model", "seed"))


class TemporalTask(Task):
    """Trains a :class:`TemporalLinkModel` (``model='tgn'`` or ``'jodie'``; ``pres=True`` adds
    PRES) on a :class:`TemporalDataset`:

        task = TemporalTask(wiki, "tgn", batch_size=200, memory_dim=100, pres=False)
        result = Trainer(task, epochs=5).fit()   # result.metrics: valid/test AP, *_auc, *_inductive

    Options: :class:`TemporalConfig` and the model's :class:`TemporalModelConfig` (memory_dim,
    num_neighbors, aggregator, ...). After training the whole stream is replayed with the best
    parameters, so the memory is ready for ``task.model.embed`` / ``score`` / ``save``."""

    data_parallel = False  # state (memory) carried from batch to batch in event order

    metric = "ap"
    unit = "events"
    default_loop = LoopConfig(epochs=5)
    default_optimizer = OptimizerConfig(lr=1e-3)
    # About twenty small tensors: one fused step beats the per-tensor loop.
    fused_optimizer = True

    def __init__(self, dataset: TemporalDataset, model: str = "tgn", *, config: Optional[TemporalConfig] = None,
                 **options):
        if not isinstance(dataset, TemporalDataset):
            raise ValueError(f"temporal link prediction needs a TemporalDataset, got {type(dataset).__name__}")
        for split in ("train", "valid", "test"):
            if split not in dataset.splits or dataset.splits[split].numel() == 0:
                raise ValueError(f"{dataset.name}: the event stream has no {split!r} split")
        model_options = {name: options.pop(name) for name in list(options) if name in MODEL_OPTIONS}
        self.config = make_config(TemporalConfig, config, options, "TemporalTask")
        TemporalModelConfig(model=model, **model_options)  # refuses a bad model or option now
        self.dataset, self.kind, self.model_options = dataset, model, model_options
        self.eval_batch_size = self.config.eval_batch_size or self.config.batch_size
        self.name = f"{model}{'+pres' if model_options.get('pres') else ''} {dataset.name} batch {self.config.batch_size}"

    def build(self, device: torch.device, seed: int) -> nn.Module:
        self.device, self.seed = device, seed
        self._split_events(self.config.new_node_fraction)
        dataset = self.dataset
        events = torch.cat([self.train_events, dataset.splits["valid"], dataset.splits["test"]])
        self.graph = TemporalGraph.from_dataset(dataset, events)
        options = dict(self.model_options)
        if self.kind == "jodie" and "time_scale" not in options:
            options["time_scale"] = _mean_revisit_gap(TemporalGraph.from_dataset(dataset, self.train_events))
        self.model_config = TemporalModelConfig(model=self.kind, seed=seed, **options)
        self.model = TemporalLinkModel(self.graph, self.model_config, device=device,
                                       state_device=self.config.state_device)
        self._make_loaders()
        return self.model

    def settings(self) -> Dict:
        dataset, config = self.dataset, self.config
        return {"dataset": {"name": dataset.name, "nodes": dataset.num_nodes, "events": dataset.num_events},
                "batch_size": config.batch_size, "new_node_fraction": config.new_node_fraction,
                # Evaluation streams on in batches: their size changes the scores.
                "eval_batch_size": self.eval_batch_size, "mrr_negatives": config.mrr_negatives,
                "config": dataclasses.asdict(self.model_config)}

    def _make_loaders(self) -> None:
        """Training draws negatives among the training destinations, evaluation among all; the
        test stream adds ``mrr_negatives`` per event; replay needs neither negatives nor neighbours."""
        valid_end = self.num_train + self.num_valid
        threads = _loader_threads(self.device)
        sampling = dict(self.model_config.loader_options(), num_threads=threads)
        train_destinations = torch.unique(self.graph.dst[:self.num_train])
        all_destinations = torch.unique(self.dataset.dst)
        self.train_loader = TemporalLoader(self.graph, self.config.batch_size, stop=self.num_train,
                                           destinations=train_destinations, seed=self.seed, **sampling)
        self.valid_loader = TemporalLoader(self.graph, self.eval_batch_size, start=self.num_train, stop=valid_end,
                                           destinations=all_destinations,
                                           seed=mix_seed(self.seed, EVALUATION_STREAM, 1), **sampling)
        self.test_loader = TemporalLoader(self.graph, self.eval_batch_size, start=valid_end,
                                          destinations=all_destinations, num_negatives=1 + self.config.mrr_negatives,
                                          seed=mix_seed(self.seed, EVALUATION_STREAM, 2), **sampling)
        self.replay_loader = TemporalLoader(self.graph, self.eval_batch_size, num_negatives=0, num_neighbors=0,
                                            num_threads=threads)

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

    def start_epoch(self, epoch: int) -> None:
        self.model.reset_state()

    def batches(self, epoch: int):
        return self.train_loader.iterate(epoch)

    def num_batches(self) -> int:
        return len(self.train_loader)

    def loss(self, batch):
        self._output = self.model(batch)
        return _link_loss(self._output), batch.src.numel()

    def after_step(self, batch) -> None:
        self.model.commit(self._output)  # the new memory, after the parameters moved

    def evaluate(self) -> Dict[str, float]:
        """Streams validation then test after the training events (memory from training kept).
        Every evaluation draws the same negatives (epoch 1 of the evaluation loaders)."""
        metrics: Dict[str, float] = {}
        for split, loader in (("valid", self.valid_loader), ("test", self.test_loader)):
            metrics.update(_link_metrics(split, *self._stream(loader)))
        return metrics

    def _stream(self, loader: TemporalLoader):
        """Scores of each event against its first negative, whether it touches a held-out node and,
        with more negatives, its reciprocal rank among them."""
        positive, negative, inductive, reciprocal = [], [], [], []
        for batch in loader.iterate(1):
            out = self.model(batch)
            positive.append(out.positive.cpu())
            negative.append(out.negative[:, 0].cpu())
            inductive.append(torch.isin(batch.src, self.new_nodes) | torch.isin(batch.dst, self.new_nodes))
            if batch.num_negatives > 1:
                reciprocal.append(_reciprocal_rank(out.positive, out.negative[:, 1:]).cpu())
            self.model.commit(out)
        return (torch.cat(positive), torch.cat(negative), torch.cat(inductive),
                torch.cat(reciprocal) if reciprocal else None)

    def finish(self) -> None:
        self.replay_stream()

    @torch.no_grad()
    def replay_stream(self) -> float:
        """Rebuilds the state from all events with the current parameters; returns events/s."""
        self.model.eval()
        self.model.reset_state()
        start = time.perf_counter()
        for batch in self.replay_loader.iterate(1):
            self.model.replay(batch)
        return self.graph.num_events / (time.perf_counter() - start)


def _loader_threads(device: torch.device) -> int:
    """One background thread prepares batches when it does not take a core from the model: on a
    GPU, or with a core outside torch's intra-op pool. Otherwise it slows the steps it overlaps
    (Wikipedia, batch 200, on 2 cores both used by torch: about 4,500-5,500 training events/s
    with it, 5,800-7,000 without)."""
    spare_core = (os.cpu_count() or 1) > torch.get_num_threads()
    return 1 if device.type == "cuda" or spare_core else 0


def _link_loss(out: BatchOutput) -> torch.Tensor:
    return (F.binary_cross_entropy_with_logits(out.positive, torch.ones_like(out.positive))
            + F.binary_cross_entropy_with_logits(out.negative, torch.zeros_like(out.negative)) + out.auxiliary_loss)


def _reciprocal_rank(positive: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """1 / rank of each positive among its negatives (ties count half)."""
    above = (others > positive.unsqueeze(1)).sum(1)
    tied = (others == positive.unsqueeze(1)).sum(1)
    return 1.0 / (1 + above + 0.5 * tied)


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
