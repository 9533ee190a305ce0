"""Full-graph training of a deep residual GNN on a 2-D grid of ranks: pipeline stages (consecutive
layers, GNNPipe) x graph partitions (halo exchange, graph parallelism).

* stages=1: graph parallelism. Every rank runs all layers on its partition and exchanges halo rows
  at each layer.
* partitions=1: layer pipelining. Every stage runs its layers on the whole graph, which flows
  through the stages as chunks (micro-batches, GPipe schedule: all forwards, then all backwards,
  one optimiser step per epoch). A chunk reads neighbours in other chunks from per-layer history
  buffers, detached, at most one epoch old.
* both > 1: hybrid; each stage is graph-parallel over its partition group.

With one chunk every neighbour is fresh, so the computation is exactly full-graph training.
Rank r is stage ``r // partitions``, partition ``r % partitions``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
from torch.nn import functional as F

from ..datasets.base import NodeDataset
from ..nn.deep_gnn import DeepGNN, dropout_generators
from .comm import ByteCounter, PointToPoint, all_reduce_gradients, exchange_halo
from .launch import group_timeout
from .layout import GraphLayout, normalized_adjacency, partition_graph
from .plan import ChunkPlan, build_partition_plan, partition_halos


@dataclass
class ParallelConfig:
    stages: int = 1
    partitions: int = 1
    chunks: int = 1
    num_layers: int = 8
    hidden: int = 64
    conv: str = "gcn"
    dropout: float = 0.5
    norm: bool = False
    lr: float = 0.01
    weight_decay: float = 5e-4
    epochs: int = 100
    warmup_epochs: int = 0  # epochs run as one chunk before chunking, to fill the history buffers
    clip_norm: Optional[float] = None
    eval_every: int = 1
    partitioner: str = "metis"
    dtype: str = "float32"  # float64 for checking against single-process training to rounding
    device: str = "cpu"  # or "cuda": each rank on GPU LOCAL_RANK (NCCL)
    seed: int = 0

    def check(self, world_size: int) -> None:
        if self.stages < 1 or self.partitions < 1 or self.chunks < 1:
            raise ValueError("stages, partitions and chunks must be positive")
        if self.stages * self.partitions != world_size:
            raise ValueError(f"stages x partitions = {self.stages} x {self.partitions} must equal the "
                             f"{world_size} ranks")
        if self.stages > self.num_layers:
            raise ValueError(f"{self.stages} stages for {self.num_layers} layers: each stage needs a layer")
        if self.epochs < 1 or self.eval_every < 1 or self.warmup_epochs < 0:
            raise ValueError("epochs and eval_every must be positive, warmup_epochs non-negative")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' but no CUDA GPU is visible")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise ValueError(f"clip_norm must be positive, got {self.clip_norm}")


@dataclass
class ParallelResult:
    config: Dict
    history: List[Dict[str, float]]
    best_epoch: int
    accuracy: Dict[str, float]  # at the best validation epoch
    seconds_per_epoch: float  # training step, slowest rank
    bytes_per_epoch: Dict[str, int]  # summed over ranks, training only
    eval_bytes: Dict[str, int] = field(default_factory=dict)
    layout: Dict[str, int] = field(default_factory=dict)


def _rank_and_world():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce(values: List[float], device, op=None) -> List[float]:
    """Sums (or ``op``s) a few numbers over all ranks, in float64 on the backend's device."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=op or dist.ReduceOp.SUM)
    return tensor.tolist()


def _device(config: ParallelConfig) -> torch.device:
    if config.device == "cpu":
        return torch.device("cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device


class ParallelTrainer:
    def __init__(self, dataset: NodeDataset, config: ParallelConfig, layout: Optional[GraphLayout] = None):
        self.rank, self.world_size = _rank_and_world()
        config.check(self.world_size)
        if dataset.features is None or dataset.labels is None or dataset.multilabel:
            raise ValueError(f"{dataset.name} needs features and single-label classes for node classification")
        missing = [name for name in ("train", "valid", "test") if name not in dataset.splits]
        if missing:
            raise ValueError(f"{dataset.name} has no {'/'.join(missing)} split")
        self.config, self.dataset = config, dataset
        self.dtype = getattr(torch, config.dtype)
        self.device = _device(config)
        self.stage, self.partition = divmod(self.rank, config.partitions)
        self.first, self.last = self.stage == 0, self.stage == config.stages - 1
        self.counter = ByteCounter()
        self.p2p = PointToPoint(self.counter, self.device)
        self.evaluations = 0
        self.partition_group = self._partition_group()

        self.layout = layout if layout is not None else self._shared_layout(dataset)
        adjacency = normalized_adjacency(dataset.graph, "gcn" if config.conv == "gcn" else "mean", self.layout,
                                         dtype=self.dtype)
        halos = partition_halos(adjacency, self.layout)
        self.halo_rows = sum(h.numel() for h in halos)
        self.plan = build_partition_plan(adjacency, self.layout, self.partition, halos).to(self.device)
        self.full_plan = (self.plan if self.layout.num_chunks == 1 else
                          build_partition_plan(adjacency, self.layout.merged_chunks(), self.partition,
                                               halos).to(self.device))

        own = self.layout.order[self.plan.own_start:self.plan.own_end]
        self.features = dataset.features[own].to(self.device, self.dtype) if self.first else None
        self.labels = dataset.labels[own].to(self.device) if self.last else None
        self.masks = {}
        if self.last:
            position = self.layout.position
            for name in ("train", "valid", "test"):
                local = position[dataset.splits[name]] - self.plan.own_start
                local = local[(local >= 0) & (local < self.plan.num_own)]
                self.masks[name] = torch.sort(local).values.to(self.device)
        self.num_train = dataset.splits["train"].numel()

        torch.manual_seed(config.seed)  # every rank builds the same full model, then keeps its stage
        model = DeepGNN(dataset.features.size(1), config.hidden, dataset.num_classes, config.num_layers,
                        conv=config.conv, dropout=config.dropout, norm=config.norm).to(self.device, self.dtype)
        self.model = model
        self.layer_ids = model.stage_layers(config.stages, self.stage)
        self.parameters = model.stage_parameters(config.stages, self.stage)
        self.optimizer = torch.optim.Adam(self.parameters, lr=config.lr, weight_decay=config.weight_decay)
        self.generators = dropout_generators(config.seed, config.num_layers, self.partition, self.device)
        self.history = [torch.zeros(self.plan.num_local, config.hidden, dtype=self.dtype, device=self.device)
                        for _ in self.layer_ids]

    # ------------------------------------------------------------------ set-up
    def _partition_group(self):
        if self.config.partitions == 1:
            return None
        size, timeout = self.config.partitions, group_timeout()  # new_group would wait gloo's 30 minutes
        groups = [dist.new_group(list(range(s * size, (s + 1) * size)), timeout=timeout)
                  for s in range(self.config.stages)]  # every rank creates every group, in order
        return groups[self.stage]

    def _shared_layout(self, dataset: NodeDataset) -> GraphLayout:
        """Partitioned on rank 0 and broadcast, so every rank uses the same layout."""
        layout = [None]
        if self.rank == 0:
            layout[0] = partition_graph(dataset.graph, self.config.partitions, self.config.chunks,
                                        partitioner=self.config.partitioner)
        if self.world_size > 1:
            dist.broadcast_object_list(layout, src=0)
        return layout[0]

    # ------------------------------------------------------------------ one chunk through one stage
    def _stage_forward(self, chunk: ChunkPlan, h: torch.Tensor, *, record_history: bool) -> torch.Tensor:
        if self.first:
            h = self.model.embed(h, self.generators[0])
        for slot, layer_id in enumerate(self.layer_ids):
            fresh = h
            if self.partition_group is not None:
                halo = exchange_halo(h, chunk, self.partition_group, self.counter)
                fresh = torch.cat([h, halo])
            aggregated = chunk.fresh(fresh)
            if chunk.history is not None:
                aggregated = aggregated + chunk.history(self.history[slot])
            if record_history:
                self.history[slot][chunk.start:chunk.end] = h.detach()
                if self.partition_group is not None:
                    self.history[slot][chunk.halo_positions] = halo.detach()
            h = self.model.layers[layer_id](h, aggregated, self.generators[layer_id + 1])
        return h

    def _stage_input(self, chunk: ChunkPlan) -> torch.Tensor:
        if self.first:
            return self.features[chunk.start:chunk.end]
        previous = self.rank - self.config.partitions
        return self.p2p.receive((chunk.num_rows, self.config.hidden), self.dtype, previous, PointToPoint.FORWARD)

    def _chunk_loss(self, chunk: ChunkPlan, h: torch.Tensor) -> torch.Tensor:
        train = self.masks["train"]
        train = train[(train >= chunk.start) & (train < chunk.end)] - chunk.start
        logits = self.model.output(h).index_select(0, train)
        return F.cross_entropy(logits, self.labels[chunk.start + train], reduction="sum") / self.num_train

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, epoch: int) -> float:
        """One optimiser step over the whole graph; returns the training loss (on every rank)."""
        self.model.train()
        plan = self.full_plan if epoch < self.config.warmup_epochs else self.plan
        record = self.layout.num_chunks > 1
        self.optimizer.zero_grad(set_to_none=True)
        kept, loss_sum = [], 0.0
        for chunk in plan.chunks:
            x = self._stage_input(chunk)
            if not self.first:
                x.requires_grad_(True)
            h = self._stage_forward(chunk, x, record_history=record)
            if self.last:
                loss = self._chunk_loss(chunk, h)
                loss_sum += loss.item()
                kept.append((x, loss))
            else:
                self.p2p.send(h, self.rank + self.config.partitions, PointToPoint.FORWARD)
                kept.append((x, h))
        for chunk, (x, out) in zip(reversed(plan.chunks), reversed(kept)):
            if self.last:
                out.backward()
            else:
                grad = self.p2p.receive(out.shape, out.dtype, self.rank + self.config.partitions,
                                        PointToPoint.BACKWARD)
                out.backward(grad)
            if not self.first:
                self.p2p.send(x.grad, self.rank - self.config.partitions, PointToPoint.BACKWARD)
        self.p2p.flush()
        if self.partition_group is not None:
            all_reduce_gradients(self.parameters, self.partition_group, self.config.partitions, self.counter)
        if self.config.clip_norm is not None:
            self._clip_gradients()
        self.optimizer.step()
        return _all_reduce([loss_sum], self.device)[0]

    def _clip_gradients(self) -> None:
        """Clips by the norm over all parameters of the model: each stage's share counted once."""
        squares = sum(float(p.grad.double().pow(2).sum()) for p in self.parameters if p.grad is not None)
        total = _all_reduce([squares if self.partition == 0 else 0.0], self.device)[0]
        scale = self.config.clip_norm / (total ** 0.5 + 1e-6)
        if scale < 1.0:
            for p in self.parameters:
                if p.grad is not None:
                    p.grad.mul_(scale)

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        """Accuracy of every split from one exact full-graph pass (one chunk, no history)."""
        self.model.eval()
        self.counter.phase = "eval"
        chunk = self.full_plan.chunks[0]
        h = self._stage_forward(chunk, self._stage_input(chunk), record_history=False)
        counts = [0.0] * 6
        if self.last:
            predicted = self.model.output(h).argmax(dim=1)
            for index, name in enumerate(("train", "valid", "test")):
                rows = self.masks[name]
                counts[2 * index] = float((predicted[rows] == self.labels[rows]).sum())
                counts[2 * index + 1] = rows.numel()
        else:
            self.p2p.send(h, self.rank + self.config.partitions, PointToPoint.FORWARD)
        self.p2p.flush()
        counts = _all_reduce(counts, self.device)
        self.counter.phase = "train"
        self.evaluations += 1
        return {name: counts[2 * i] / max(counts[2 * i + 1], 1.0)
                for i, name in enumerate(("train", "valid", "test"))}

    # ------------------------------------------------------------------ the run
    def fit(self, progress: bool = False) -> ParallelResult:
        history, best, best_epoch = [], None, -1
        train_seconds = 0.0
        epochs = range(self.config.epochs)
        if progress and self.rank == 0:
            from tqdm import tqdm

            epochs = tqdm(epochs, desc=f"pipe {self.config.stages}x{self.config.partitions}", unit="epoch")
        for epoch in epochs:
            started = time.perf_counter()
            loss = self.train_epoch(epoch)
            if not math.isfinite(loss):  # the same all-reduced value on every rank: all stop together
                raise ValueError(f"the training loss is {loss} at epoch {epoch + 1}; look for NaN or infinite "
                                 f"values in the features or lower the learning rate")
            seconds = _all_reduce([time.perf_counter() - started], self.device, dist.ReduceOp.MAX)[0]
            train_seconds += seconds
            row = {"epoch": epoch, "loss": loss, "seconds": seconds}
            if (epoch + 1) % self.config.eval_every == 0 or epoch == self.config.epochs - 1:
                row.update(self.evaluate())
                if best is None or row["valid"] > best["valid"]:
                    best, best_epoch = row, epoch
            history.append(row)
            if progress and self.rank == 0:
                epochs.set_postfix(loss=f"{loss:.4f}", valid=f"{best['valid']:.3f}" if best else "-")
        return ParallelResult(
            config=asdict(self.config), history=history, best_epoch=best_epoch,
            accuracy={k: best[k] for k in ("train", "valid", "test")},
            seconds_per_epoch=train_seconds / self.config.epochs,
            bytes_per_epoch=self._summed_bytes("train", self.config.epochs),
            eval_bytes=self._summed_bytes("eval", max(self.evaluations, 1)),
            layout={"num_nodes": self.layout.num_nodes, "halo_rows": self.halo_rows,
                    "partitions": self.layout.num_partitions, "chunks": self.layout.num_chunks})

    def _summed_bytes(self, phase: str, divide: int) -> Dict[str, int]:
        totals = self.counter.totals(phase)
        kinds = sorted(totals)
        summed = _all_reduce([float(totals[kind]) for kind in kinds], self.device)
        return {kind: int(round(value / divide)) for kind, value in zip(kinds, summed)}
