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

:class:`PipelineEngine` is one rank's share of that computation: its stage's parameters, its
partition's rows, the history buffers and dropout generators. The Trainer runs it as a task
(:class:`gnnscale.train.ParallelFullGraphTask`), which gives it epochs, evaluation, logs and
per-rank checkpoints.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from ..datasets.base import NodeDataset
from ..nn.deep_gnn import DeepGNN, dropout_generators
from .comm import ByteCounter, PointToPoint, all_reduce_gradients, exchange_halo
from ..distributed.launch import group_timeout
from .layout import GraphLayout, normalized_adjacency, partition_graph
from .config import ParallelConfig
from .plan import ChunkPlan, build_partition_plan, partition_halos

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


def _layout_digest(layout: GraphLayout) -> str:
    """A short digest of the node order and the partition and chunk boundaries: a resume on another
    layout (a custom one, or a partitioner that changed) would read history rows of other nodes."""
    digest = hashlib.sha256()
    for tensor in (layout.order, layout.partition_offsets, layout.chunk_offsets):
        digest.update(tensor.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class StageModules(nn.Module):
    """The parts of the whole model one pipeline stage trains: its graph layers (named as in the
    whole model, ``layers.3...``), plus the input projection on the first stage and the
    classifier on the last. What the Trainer optimises and checkpoints on that rank."""

    def __init__(self, model: DeepGNN, stages: int, stage: int):
        super().__init__()
        if stage == 0:
            self.input = model.input
        self.layers = nn.ModuleDict({str(i): model.layers[i] for i in model.stage_layers(stages, stage)})
        if stage == stages - 1:
            self.output = model.output


class PipelineEngine:
    """This rank's share of parallel full-graph training of ``dataset`` (a node dataset with
    features, single-label classes and train / valid / test splits) on ``device``; the ranks of
    the default process group are the grid's (``config.stages x config.partitions`` of them).
    Every rank builds the same whole model from ``seed`` and keeps its stage."""

    def __init__(self, dataset: NodeDataset, config: ParallelConfig, device: torch.device, seed: int,
                 layout: Optional[GraphLayout] = None):
        self.rank, self.world_size = _rank_and_world()
        config.check(self.world_size)
        if dataset.features is None or dataset.labels is None or dataset.multilabel:
            raise ValueError(f"{dataset.name} needs features and single-label classes for node classification")
        missing = [name for name in ("train", "valid", "test") if name not in dataset.splits]
        if missing:
            raise ValueError(f"{dataset.name} has no {'/'.join(missing)} split")
        self.config, self.dataset, self.device = config, dataset, device
        self.dtype = getattr(torch, config.dtype)
        self.stage, self.partition = divmod(self.rank, config.partitions)
        self.first, self.last = self.stage == 0, self.stage == config.stages - 1
        self.counter = ByteCounter()
        self.p2p = PointToPoint(self.counter, self.device)
        self.evaluations = 0
        self.epochs_trained = 0
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

        torch.manual_seed(seed)  # every rank builds the same full model, then keeps its stage
        model = DeepGNN(dataset.features.size(1), config.hidden, dataset.num_classes, config.num_layers,
                        conv=config.conv, dropout=config.dropout, norm=config.norm).to(self.device, self.dtype)
        self.model = model
        self.layer_ids = model.stage_layers(config.stages, self.stage)
        self.stage_modules = StageModules(model, config.stages, self.stage)
        self.parameters = list(self.stage_modules.parameters())
        self.generators = dropout_generators(seed, config.num_layers, self.partition, self.device)
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
            layout[0] = partition_graph(dataset.graph, self.config.partitions, self.config.num_chunks,
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
    def train_epoch(self, epoch: int, optimizer: torch.optim.Optimizer, clip_norm: Optional[float] = None) -> float:
        """Epoch ``epoch`` (from 1): one step of ``optimizer`` (over this rank's stage parameters)
        for the whole graph; returns the training loss, the same on every rank."""
        self.model.train()
        plan = self.full_plan if epoch <= self.config.warmup_epochs else self.plan
        record = self.layout.num_chunks > 1
        optimizer.zero_grad(set_to_none=True)
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
        if clip_norm is not None:
            self._clip_gradients(clip_norm)
        optimizer.step()
        self.epochs_trained += 1
        return _all_reduce([loss_sum], self.device)[0]

    def _clip_gradients(self, clip_norm: float) -> None:
        """Clips by the norm over all parameters of the model: each stage's share counted once."""
        squares = sum(float(p.grad.double().pow(2).sum()) for p in self.parameters if p.grad is not None)
        total = _all_reduce([squares if self.partition == 0 else 0.0], self.device)[0]
        scale = clip_norm / (total ** 0.5 + 1e-6)
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

    # ------------------------------------------------------------------ what a run records
    def settings(self) -> Dict[str, Any]:
        """What determines this rank's computation besides the optimiser and the seed: the config,
        the world size, the device type (dropout generators of another device type draw other
        masks), the dataset's sizes and a digest of the layout."""
        dataset = self.dataset
        return {"world_size": self.world_size, "config": asdict(self.config), "device": self.device.type,
                "dataset": {"name": dataset.name, "nodes": dataset.graph.num_nodes,
                            "edges": dataset.graph.num_edges, "features": list(dataset.features.shape),
                            "classes": dataset.num_classes,
                            "splits": {k: dataset.splits[k].numel() for k in ("train", "valid", "test")}},
                "layout": {"partitions": self.layout.num_partitions, "chunks": self.layout.num_chunks,
                           "digest": _layout_digest(self.layout)}}

    def state_dict(self) -> Dict[str, Any]:
        """What carries over from one epoch to the next besides the parameters and the optimiser:
        history buffers, dropout generators, traffic counters."""
        return {"history_buffers": list(self.history),
                "dropout": [generator.get_state() for generator in self.generators],
                "bytes": {phase: dict(kinds) for phase, kinds in self.counter.bytes.items()},
                "evaluations": self.evaluations, "epochs_trained": self.epochs_trained}

    @torch.no_grad()
    def load_state_dict(self, state: Dict[str, Any]) -> None:
        missing = sorted({"history_buffers", "dropout", "bytes", "evaluations", "epochs_trained"} - set(state))
        if missing:
            raise ValueError(f"the engine state lacks {', '.join(missing)}")
        buffers, dropout = state["history_buffers"], state["dropout"]
        if len(buffers) != len(self.history) or len(dropout) != len(self.generators):
            raise ValueError(f"the engine state holds {len(buffers)} history buffers and {len(dropout)} dropout "
                             f"generators, this stage {len(self.history)} and {len(self.generators)}")
        for slot, (target, saved) in enumerate(zip(self.history, buffers)):
            if not isinstance(saved, torch.Tensor) or saved.shape != target.shape:
                shape = list(saved.shape) if isinstance(saved, torch.Tensor) else type(saved).__name__
                raise ValueError(f"history buffer {slot} is {shape}, expected {list(target.shape)}")
            target.copy_(saved)
        for generator, generator_state in zip(self.generators, dropout):
            generator.set_state(generator_state)
        self.counter.bytes.clear()
        for phase, kinds in state["bytes"].items():
            self.counter.bytes[phase].update(kinds)
        self.evaluations, self.epochs_trained = int(state["evaluations"]), int(state["epochs_trained"])

    def traffic(self) -> Dict[str, Dict[str, int]]:
        """Bytes sent per training epoch and per evaluation, by kind, summed over the ranks (every
        rank calls this)."""
        return {"train": self._summed_bytes("train", max(self.epochs_trained, 1)),
                "eval": self._summed_bytes("eval", max(self.evaluations, 1))}

    def _summed_bytes(self, phase: str, divide: int) -> Dict[str, int]:
        totals = self.counter.totals(phase)
        kinds = sorted(totals)
        summed = _all_reduce([float(totals[kind]) for kind in kinds], self.device)
        return {kind: int(round(value / divide)) for kind, value in zip(kinds, summed)}
