"""TemporalLinkModel: a memory-based dynamic GNN (TGN or JODIE, optionally with PRES) together with
its state, usable batch by batch for training and as a stream for serving.

Training and evaluation take :class:`~gnnscale.loader.TemporalBatch` es from a
:class:`~gnnscale.loader.TemporalLoader`, which owns the temporal neighbour sampler and the
negative sampler: a batch arrives with its queries' sampled neighbourhoods (see the loader's
module for which earlier events a query may see, ``in_batch_visible``), and the model only reads
memory and computes. A batch is processed in TGN's order: the endpoints, the negatives and their
sampled neighbours read their memory with pending mail applied; embeddings and link logits are
computed; after the optimiser step, :meth:`commit` stores the endpoints' new memory and the
batch's own messages.

Streaming: :meth:`observe` feeds events (batched by a TemporalLoader too), :meth:`embed` and
:meth:`score` answer queries at any time, and :meth:`save` / :meth:`load` keep everything needed to
resume or serve (parameters, memory, mailbox, last-update times, the change model of PRES and the
events seen). A query at time t may see every event seen before t, so serving samples its
neighbours itself, with a sampler it builds per call from its config (``num_neighbors``,
``strategy``) over the events it holds; the model keeps no sampler, so :meth:`forward` cannot
sample behind the loader's back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..loader.temporal import TemporalBatch, TemporalLoader
from ..sampling.neighbor import mix_seed
from ..sampling.temporal import TemporalNeighborhood, TemporalNeighborSampler
from ..temporal_graph import TemporalGraph
from .memory import MemoryRead, NodeMemory
from .pres import PRES
from .tgn import LinkScorer, TemporalAttentionEmbedding, TimeProjectionEmbedding

MODELS = ("tgn", "jodie")


@dataclass
class TemporalModelConfig:
    """The model's options. ``num_neighbors``, ``strategy`` and ``in_batch_visible`` say how its
    batches are sampled (:meth:`loader_options`); serving samples with the first two."""

    model: str = "tgn"
    memory_dim: int = 100
    time_dim: int = 100
    embedding_dim: int = 100
    num_neighbors: int = 10
    strategy: str = "recent"
    aggregator: str = "last"
    message: str = "identity"
    heads: int = 2
    dropout: float = 0.1
    in_batch_visible: bool = True
    time_scale: float = 1.0  # JODIE: time differences are divided by this (e.g. the mean gap)
    pres: bool = False
    pres_trend: str = "gmm"
    pres_gamma: float = 0.9
    pres_learn_gamma: bool = True
    pres_coherence: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")

    @property
    def uses_neighbors(self) -> bool:
        """TGN attends over sampled neighbours; JODIE reads only each query's own memory."""
        return self.model == "tgn"

    def loader_options(self) -> dict:
        """The :class:`~gnnscale.loader.TemporalLoader` settings of this model's batches."""
        return {"num_neighbors": self.num_neighbors if self.uses_neighbors else 0, "strategy": self.strategy,
                "in_batch_visible": self.in_batch_visible}


@dataclass
class BatchOutput:
    """Logits of the positive events ``[B]`` and of the negatives ``[B, n]``, the auxiliary loss
    (PRES coherence) and what :meth:`TemporalLinkModel.commit` needs afterwards."""

    positive: torch.Tensor
    negative: torch.Tensor
    auxiliary_loss: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor
    t: torch.Tensor
    edge_features: Optional[torch.Tensor]
    nodes: torch.Tensor
    read: MemoryRead
    memory: torch.Tensor


class TemporalLinkModel(nn.Module):
    def __init__(self, graph: TemporalGraph, config: Optional[TemporalModelConfig] = None, *,
                 device="cpu", state_device=None, **options):
        super().__init__()
        self.config = config = config or TemporalModelConfig(**options)
        self.graph = graph
        self.device = torch.device(device)
        edge_dim = graph.edge_feature_dim
        self.memory = NodeMemory(graph.num_nodes, config.memory_dim, config.time_dim, edge_dim,
                                 aggregator=config.aggregator, updater="gru" if config.model == "tgn" else "rnn",
                                 message=config.message, state_device=state_device)
        if config.uses_neighbors:
            self.embedding = TemporalAttentionEmbedding(config.memory_dim, config.time_dim, edge_dim,
                                                        config.embedding_dim, config.heads, config.dropout)
        else:
            self.embedding = TimeProjectionEmbedding(config.memory_dim, config.embedding_dim, config.time_scale)
        self.scorer = LinkScorer(config.embedding_dim)
        self.pres = PRES(graph.num_nodes, config.memory_dim, trend=config.pres_trend, gamma=config.pres_gamma,
                         learn_gamma=config.pres_learn_gamma, coherence_weight=config.pres_coherence,
                         seed=config.seed) if config.pres else None
        self.to(self.device)
        self._round = 0  # batches applied since the last reset: varies serving's uniform draws

    # ----------------------------------------------------------------------------- batches
    def reset_state(self) -> None:
        """Empties memory and mailbox (and the PRES change model), as at the start of the stream."""
        self.memory.reset_state()
        if self.pres is not None:
            self.pres.trend.reset()
        self._round = 0

    def forward(self, batch: TemporalBatch) -> BatchOutput:
        """Logits for the batch's events and for its negatives, from the neighbourhoods the
        loader sampled for its queries."""
        z, read, memory, auxiliary = self._embed(batch.neighborhood)
        source, destination, negatives = batch.split(z)
        positive = self.scorer(source, destination)
        per_event = batch.num_negatives
        negative = self.scorer(source.repeat_interleave(per_event, 0),
                               negatives.reshape(-1, z.size(1))).reshape(batch.num_events, per_event)
        return BatchOutput(positive, negative, auxiliary, batch.src, batch.dst, batch.t, batch.edge_features,
                           batch.neighborhood.nodes, read, memory)

    @torch.no_grad()
    def commit(self, out: BatchOutput) -> None:
        """Stores the new memory of the batch's endpoints, then the batch's messages. (Persisting
        the memory of negatives and neighbours too would apply each message only once and, on
        Wikipedia, costs about 10 points of AP after one epoch.)"""
        endpoints = torch.unique(torch.cat([out.src, out.dst]))
        rows = torch.searchsorted(out.nodes, endpoints).to(self.device)
        self._commit_rows(endpoints, rows, out.read, out.memory)
        self.memory.store_messages(out.src, out.dst, out.t, out.edge_features, self.device)
        self._round += 1

    @torch.no_grad()
    def replay(self, batch: TemporalBatch) -> None:
        """Applies a batch of events already in the graph to the state, without computing
        embeddings (its negatives and neighbourhoods, if any, are not used)."""
        endpoints = torch.unique(torch.cat([batch.src, batch.dst]))
        read = self.memory.read(endpoints, self.device)
        memory, _ = self._corrected(endpoints, read)
        self._commit_rows(endpoints, torch.arange(endpoints.numel(), device=self.device), read, memory)
        self.memory.store_messages(batch.src, batch.dst, batch.t, batch.edge_features, self.device)
        self._round += 1

    # ----------------------------------------------------------------------------- streaming
    @torch.no_grad()
    def observe(self, src, dst, t, edge_features=None, *, batch_size: int = 200) -> None:
        """Feeds new events (in time order, after the events seen so far) in batches of ``batch_size``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            # Checked before the events join the graph, so a refused call changes nothing.
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        event_ids = self.graph.append(src, dst, t, edge_features)
        self._grow(self.graph.num_nodes)
        if event_ids.numel() == 0:
            return
        replay = TemporalLoader(self.graph, batch_size, start=int(event_ids[0]), num_negatives=0, num_neighbors=0,
                                num_threads=0)
        for batch in replay:
            self.replay(batch)

    @torch.no_grad()
    def embed(self, nodes: torch.Tensor, t) -> torch.Tensor:
        """Embeddings of ``nodes`` at time(s) ``t``, from all events seen before ``t``."""
        nodes = torch.as_tensor(nodes, dtype=torch.int64).reshape(-1)
        times = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(nodes.numel()).contiguous()
        return self._embed(self._serving_neighborhood(nodes, times))[0]

    @torch.no_grad()
    def score(self, src, dst, t) -> torch.Tensor:
        """Probability of an interaction ``src -> dst`` at time(s) ``t``."""
        src = torch.as_tensor(src, dtype=torch.int64).reshape(-1)
        dst = torch.as_tensor(dst, dtype=torch.int64).reshape(-1)
        times = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(src.numel())
        z = self.embed(torch.cat([src, dst]), torch.cat([times, times]))
        return torch.sigmoid(self.scorer(z[:src.numel()], z[src.numel():]))

    def save(self, path) -> None:
        """Writes parameters, state and events to ``path`` atomically."""
        payload = {"config": asdict(self.config), "parameters": self.state_dict(),
                   "memory": {k: v.cpu() for k, v in self.memory.state().items()},
                   "trend": None if self.pres is None else self.pres.trend.state(),
                   "events": {"src": self.graph.src, "dst": self.graph.dst, "t": self.graph.t,
                              "edge_features": self.graph.edge_features, "num_nodes": self.graph.num_nodes},
                   "round": self._round}
        save_checkpoint(path, payload)

    @classmethod
    def load(cls, path, *, device="cpu", state_device=None) -> "TemporalLinkModel":
        payload = load_checkpoint(path)
        if payload is None:
            raise FileNotFoundError(f"no saved temporal model at {path}")
        if not {"config", "parameters", "memory", "events"} <= set(payload):
            raise ValueError(f"{path} is not a saved TemporalLinkModel")
        events = payload["events"]
        graph = TemporalGraph(events["src"], events["dst"], events["t"], events["edge_features"],
                              num_nodes=events["num_nodes"])
        model = cls(graph, TemporalModelConfig(**payload["config"]), device=device, state_device=state_device)
        model.load_state_dict(payload["parameters"])
        model.memory.load_state(payload["memory"])
        if model.pres is not None and payload["trend"] is not None:
            model.pres.trend.load_state(payload["trend"])
        model._round = payload["round"]
        return model

    # ----------------------------------------------------------------------------- internals
    def _grow(self, num_nodes: int) -> None:
        self.memory.grow(num_nodes)
        if self.pres is not None:
            self.pres.trend.grow(num_nodes)

    def _corrected(self, nodes: torch.Tensor, read: MemoryRead):
        if self.pres is None:
            return read.updated, read.updated.new_zeros(())
        memory = self.pres.correct(nodes, read.previous, read.updated, read.pending)
        return memory, self.pres.coherence_loss(read.previous, memory, read.pending)

    def _commit_rows(self, nodes, rows, read: MemoryRead, memory: torch.Tensor) -> None:
        new_memory = memory[rows].detach()
        if self.pres is not None:
            changed = torch.isin(rows, read.pending)
            self.pres.trend.observe(nodes[changed.cpu()], (new_memory - read.previous[rows])[changed].cpu())
        self.memory.commit(nodes, new_memory, read.last_update[rows])

    def _serving_neighborhood(self, nodes: torch.Tensor, times: torch.Tensor) -> TemporalNeighborhood:
        """Neighbourhoods of serving queries, over every event seen (a sampler per call: it only
        holds references, and the graph may have grown since the last one)."""
        config = self.config
        if not config.uses_neighbors:
            return TemporalNeighborhood.of_queries(nodes, times)
        sampler = TemporalNeighborSampler(self.graph, config.num_neighbors, config.strategy, config.seed)
        return sampler.neighborhood(nodes, times, seed=mix_seed(config.seed, self._round))

    def _embed(self, neighborhood: TemporalNeighborhood):
        """Embeddings of the neighbourhood's queries, with the memory read for them."""
        if self.config.uses_neighbors and not neighborhood.has_neighbors:
            raise ValueError("TGN embeds from sampled neighbours, and this batch has none: build its "
                             "TemporalLoader with num_neighbors >= 1 (config.loader_options())")
        read = self.memory.read(neighborhood.nodes, self.device)
        memory, auxiliary = self._corrected(neighborhood.nodes, read)
        part = neighborhood.to(self.device, non_blocking=True)
        if not self.config.uses_neighbors:
            dt = part.query_times - read.last_update[part.query_rows]
            return self.embedding(memory[part.query_rows], dt), read, memory, auxiliary
        edge = part.edge_features
        if edge is None:
            edge = memory.new_zeros(*part.mask.shape, 0)
        z = self.embedding(memory, part.query_rows, part.neighbor_rows, part.mask, part.dt, edge)
        return z, read, memory, auxiliary
