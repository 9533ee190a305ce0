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

Checkpoints (``checkpoint_dir``): after every epoch each rank writes its own file,
``rank{r}-epoch{n}.pt`` (its parameters, optimiser state, history buffers, dropout generators and
RNG state, with the run's record: epochs, history rows, best validation row), atomically; after a
barrier, when every rank's file for epoch n is on disk, each rank deletes its older ones. A rank
killed at any moment therefore leaves the newest epoch every rank completed on disk, and a resume
(``resume=True``) agrees on that epoch over all ranks, so it never combines one rank's epoch n
with another's n - 1. Each file records the run's settings (the config but ``epochs``, the world
size, the dataset's sizes and a digest of the graph layout); a resume with other settings is
refused, listing what differs. ``epochs`` may grow. A run without ``resume`` starts over and
deletes the checkpoints in ``checkpoint_dir``.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.distributed as dist
from torch.nn import functional as F

from ..checkpoint import check_same_run, flatten, load_checkpoint, plain, restore_rng_state, rng_state, save_checkpoint
from ..datasets.base import NodeDataset
from ..nn.deep_gnn import DeepGNN, dropout_generators
from .comm import ByteCounter, PointToPoint, all_reduce_gradients, exchange_halo
from ..distributed.launch import group_timeout
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
    checkpoint_dir: Optional[str] = None  # a checkpoint per rank after every epoch
    resume: bool = False  # continue from the newest epoch every rank completed in checkpoint_dir

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
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")


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


def _gather(value: Any) -> List[Any]:
    """``value`` of every rank, in rank order (the rank's own alone without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def _agree_on_problems(problem: Optional[str]) -> None:
    """Raises the same ValueError on every rank if any rank found a problem (the lowest rank's),
    so that no rank goes on alone and waits for the others until it times out."""
    first = next((found for found in _gather(problem) if found is not None), None)
    if first is not None:
        raise ValueError(first)


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


CHECKPOINT_NAME = re.compile(r"rank(\d+)-epoch(\d+)\.pt")
# What a rank's checkpoint must hold to resume from.
CHECKPOINT_KEYS = ("fingerprint", "state", "parameters", "optimizer", "history_buffers", "dropout", "rng", "bytes",
                   "evaluations")
RUN_STATE_KEYS = {"epochs", "history", "best", "best_epoch", "train_seconds"}


def _layout_digest(layout: GraphLayout) -> str:
    """A short digest of the node order and the partition and chunk boundaries: a resume on another
    layout (a custom one, or a partitioner that changed) would read history rows of other nodes."""
    digest = hashlib.sha256()
    for tensor in (layout.order, layout.partition_offsets, layout.chunk_offsets):
        digest.update(tensor.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _describe_epochs(everyone: List[List[int]]) -> str:
    return "; ".join(f"rank {rank}: {', '.join(map(str, epochs)) if epochs else 'none'}"
                     for rank, epochs in enumerate(everyone))


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
        self.checkpoint_dir = Path(config.checkpoint_dir) if config.checkpoint_dir is not None else None

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
    def fit(self, progress: bool = False,
            on_epoch_end: Optional[Callable[[Dict[str, float]], None]] = None) -> ParallelResult:
        """Trains ``config.epochs`` epochs (from the checkpoint's under ``resume``). ``on_epoch_end``
        is called with each epoch's row once its checkpoint is written."""
        state = {"epochs": 0, "history": [], "best": None, "best_epoch": -1, "train_seconds": 0.0}
        fingerprint = self.fingerprint() if self.checkpoint_dir is not None else None
        if self.config.resume:
            state = self._restore(fingerprint) or state
        elif self.checkpoint_dir is not None:
            self._remove_checkpoints(keep=None)  # starting over: no older run's epoch may be resumed later
        epochs = range(state["epochs"], self.config.epochs)
        if progress and self.rank == 0:
            from tqdm import tqdm

            epochs = tqdm(epochs, desc=f"pipe {self.config.stages}x{self.config.partitions}", unit="epoch",
                          initial=state["epochs"], total=self.config.epochs)
        for epoch in epochs:
            row = self._run_epoch(epoch, state)
            state["history"].append(row)
            state["epochs"] = epoch + 1
            self._save(state, fingerprint)
            if on_epoch_end is not None:
                on_epoch_end(row)
            if progress and self.rank == 0:
                best = state["best"]
                epochs.set_postfix(loss=f"{row['loss']:.4f}", valid=f"{best['valid']:.3f}" if best else "-")
        best = state["best"]
        return ParallelResult(
            config={**asdict(self.config), "checkpoint_dir": None if self.checkpoint_dir is None
                    else str(self.checkpoint_dir)},
            history=state["history"], best_epoch=state["best_epoch"],
            accuracy={k: best[k] for k in ("train", "valid", "test")},
            seconds_per_epoch=state["train_seconds"] / self.config.epochs,
            bytes_per_epoch=self._summed_bytes("train", self.config.epochs),
            eval_bytes=self._summed_bytes("eval", max(self.evaluations, 1)),
            layout={"num_nodes": self.layout.num_nodes, "halo_rows": self.halo_rows,
                    "partitions": self.layout.num_partitions, "chunks": self.layout.num_chunks})

    def _run_epoch(self, epoch: int, state: Dict[str, Any]) -> Dict[str, float]:
        """Trains epoch ``epoch`` (from 0), evaluates when due; updates the best row in ``state``."""
        started = time.perf_counter()
        loss = self.train_epoch(epoch)
        if not math.isfinite(loss):  # the same all-reduced value on every rank: all stop together
            raise ValueError(f"the training loss is {loss} at epoch {epoch + 1}; look for NaN or infinite "
                             f"values in the features or lower the learning rate")
        seconds = _all_reduce([time.perf_counter() - started], self.device, dist.ReduceOp.MAX)[0]
        state["train_seconds"] += seconds
        row = {"epoch": epoch, "loss": loss, "seconds": seconds}
        if (epoch + 1) % self.config.eval_every == 0 or epoch == self.config.epochs - 1:
            row.update(self.evaluate())
            if state["best"] is None or row["valid"] > state["best"]["valid"]:
                state["best"], state["best_epoch"] = row, epoch
        return row

    # ------------------------------------------------------------------ checkpoints
    def fingerprint(self) -> Dict[str, Any]:
        """Everything that determines the run but ``epochs``, as a flat dict of plain values. The
        device is part of it: dropout generators of another device type draw other masks."""
        config = {k: v for k, v in asdict(self.config).items() if k not in ("epochs", "checkpoint_dir", "resume")}
        dataset = self.dataset
        settings = {"trainer": type(self).__name__, "world_size": self.world_size, "config": config,
                    "dataset": {"name": dataset.name, "nodes": dataset.graph.num_nodes,
                                "edges": dataset.graph.num_edges, "features": list(dataset.features.shape),
                                "classes": dataset.num_classes,
                                "splits": {k: dataset.splits[k].numel() for k in ("train", "valid", "test")}},
                    "layout": {"partitions": self.layout.num_partitions, "chunks": self.layout.num_chunks,
                               "digest": _layout_digest(self.layout)},
                    "optimizer": type(self.optimizer).__name__}
        return flatten(plain(settings))

    def checkpoint_path(self, epochs: int) -> Path:
        return self.checkpoint_dir / f"rank{self.rank}-epoch{epochs}.pt"

    def _own_epochs(self) -> List[int]:
        """The epochs of this rank's checkpoints in ``checkpoint_dir``, ascending."""
        if not self.checkpoint_dir.is_dir():
            return []
        names = (path.name for path in self.checkpoint_dir.glob(f"rank{self.rank}-epoch*.pt"))
        found = (CHECKPOINT_NAME.fullmatch(name) for name in names)
        return sorted(int(match.group(2)) for match in found if match and int(match.group(1)) == self.rank)

    def owned_parameters(self) -> Dict[str, torch.nn.Parameter]:
        """The parameters this rank trains (its stage's), by their names in the whole model."""
        owned = {id(p) for p in self.parameters}
        return {name: p for name, p in self.model.named_parameters() if id(p) in owned}

    def _save(self, state: Dict[str, Any], fingerprint: Dict[str, Any]) -> None:
        if self.checkpoint_dir is None:
            return
        payload = {"fingerprint": fingerprint, "state": state,
                   "parameters": {name: p.detach() for name, p in self.owned_parameters().items()},
                   "optimizer": self.optimizer.state_dict(), "history_buffers": self.history,
                   "dropout": [generator.get_state() for generator in self.generators], "rng": rng_state(),
                   "bytes": {phase: dict(kinds) for phase, kinds in self.counter.bytes.items()},
                   "evaluations": self.evaluations}
        save_checkpoint(self.checkpoint_path(state["epochs"]), payload)
        _barrier()  # every rank's file of this epoch is on disk before any rank deletes an older one
        self._remove_checkpoints(keep=state["epochs"])

    def _remove_checkpoints(self, keep: Optional[int], newer_than: int = -1) -> None:
        """Deletes this rank's checkpoints of epochs above ``newer_than`` but ``keep``, and temporary
        files a killed write left behind."""
        for epochs in self._own_epochs():
            if epochs != keep and epochs > newer_than:
                self.checkpoint_path(epochs).unlink(missing_ok=True)
        for leftover in self.checkpoint_dir.glob(f".rank{self.rank}-epoch*.pt.*.tmp"):
            leftover.unlink(missing_ok=True)

    def _restore(self, fingerprint: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Loads the newest epoch whose checkpoint every rank holds and returns its run state; None
        when no rank has a checkpoint (a fresh start). Any rank's problem is raised on all ranks."""
        everyone = _gather(self._own_epochs())
        if not any(everyone):
            return None
        common = set(everyone[0]).intersection(*everyone[1:])
        chosen = max(common) if common else None
        state, problem = None, None
        try:
            own = everyone[self.rank]
            readable = chosen if chosen is not None else (own[-1] if own else None)
            if readable is not None:
                state = self._load(self.checkpoint_path(readable), fingerprint)
            if chosen is None:
                problem = (f"the checkpoints in {self.checkpoint_dir} share no epoch that every rank completed "
                           f"({_describe_epochs(everyone)}); remove them or use another checkpoint_dir")
        except (ValueError, RuntimeError, KeyError, TypeError, OSError) as error:
            problem = str(error)
        _agree_on_problems(problem)
        # A newer file here is a write the other ranks did not finish: the epoch is trained again.
        self._remove_checkpoints(keep=chosen, newer_than=chosen)
        return state

    def _load(self, path: Path, fingerprint: Dict[str, Any]) -> Dict[str, Any]:
        checkpoint = load_checkpoint(path)
        missing = [key for key in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
        if missing:
            raise ValueError(f"checkpoint {path} is not a checkpoint of {type(self).__name__}: it lacks "
                             f"{', '.join(missing)}")
        check_same_run(path, checkpoint["fingerprint"], fingerprint)
        state = checkpoint["state"]
        if not isinstance(state, dict) or not RUN_STATE_KEYS <= set(state):
            raise ValueError(f"checkpoint {path} is damaged: its run state lacks "
                             f"{', '.join(sorted(RUN_STATE_KEYS - set(state if isinstance(state, dict) else ())))}")
        trained = state["epochs"]
        if trained > self.config.epochs:
            raise ValueError(f"checkpoint {path} has trained {trained} epochs, more than epochs="
                             f"{self.config.epochs}; resume with epochs >= {trained}")
        self._load_tensors(path, "parameters", dict(self.owned_parameters()), checkpoint["parameters"])
        self._load_tensors(path, "history buffers", dict(enumerate(self.history)),
                           dict(enumerate(checkpoint["history_buffers"])))
        if len(checkpoint["dropout"]) != len(self.generators):
            raise ValueError(f"checkpoint {path} holds {len(checkpoint['dropout'])} dropout generators, "
                             f"this model {len(self.generators)}")
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        for generator, generator_state in zip(self.generators, checkpoint["dropout"]):
            generator.set_state(generator_state)
        restore_rng_state(checkpoint["rng"])
        for phase, kinds in checkpoint["bytes"].items():
            self.counter.bytes[phase].update(kinds)
        self.evaluations = int(checkpoint["evaluations"])
        return state

    @staticmethod
    @torch.no_grad()
    def _load_tensors(path: Path, what: str, targets: Dict[Any, torch.Tensor], saved: Dict[Any, Any]) -> None:
        if set(saved) != set(targets):
            raise ValueError(f"checkpoint {path} holds the {what} {sorted(map(str, saved))}, this rank trains "
                             f"{sorted(map(str, targets))}")
        for key, target in targets.items():
            value = saved[key]
            if not isinstance(value, torch.Tensor) or value.shape != target.shape:
                shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"checkpoint {path}: {what} {key} is {shape}, expected {list(target.shape)}")
            target.copy_(value)

    def _summed_bytes(self, phase: str, divide: int) -> Dict[str, int]:
        totals = self.counter.totals(phase)
        kinds = sorted(totals)
        summed = _all_reduce([float(totals[kind]) for kind in kinds], self.device)
        return {kind: int(round(value / divide)) for kind, value in zip(kinds, summed)}
