"""Embedding modules and the link decoder of memory-based dynamic GNNs.

- :class:`TemporalAttentionEmbedding` (TGN): one layer of multi-head attention from a node, at
  query time t, to its sampled earlier interactions: neighbour memory, edge features and the
  encoded time since each interaction; merged with the node's own memory by an MLP.
- :class:`TimeProjectionEmbedding` (JODIE): the memory scaled by ``1 + w * dt``, dt the time since
  the node's last update, so embeddings drift between interactions.
- :class:`LinkScorer`: TGN's merge-layer decoder, ``MLP([z_src, z_dst]) -> logit``.
"""
import torch
from torch import nn

from .. import ops
from .memory import TimeEncoder


class TemporalAttentionEmbedding(nn.Module):
    """Multi-head attention whose key and value of an interaction j are ``W x_j + b`` with
    ``x_j = [memory_j, time(dt_j), edge_j]``. The projections are moved to the query side, which
    gives the same result with far less work per interaction:
    ``q_h . (W_k x_j) = (W_k^T q_h) . x_j`` and ``sum_j a_j W_v x_j = W_v sum_j a_j x_j``,
    so interactions are only gathered and dotted (:func:`gnnscale.ops.gather_dot` and
    :func:`~gnnscale.ops.gather_weighted_sum`, which read neighbour memory rows in place), never
    multiplied by a weight matrix. The layout of ``W`` follows ``x_j``."""

    def __init__(self, memory_dim: int, time_dim: int, edge_dim: int, embedding_dim: int, heads: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        if embedding_dim % heads:
            raise ValueError(f"embedding_dim={embedding_dim} is not divisible by heads={heads}")
        self.heads, self.head_dim = heads, embedding_dim // heads
        self.memory_dim = memory_dim
        self.time_encoder = TimeEncoder(time_dim)
        self.query = nn.Linear(memory_dim + time_dim, embedding_dim)
        interaction_dim = memory_dim + time_dim + edge_dim
        self.key = nn.Linear(interaction_dim, embedding_dim)
        self.value = nn.Linear(interaction_dim, embedding_dim)
        # ATen's dropout: these attention weights are a few thousand values per batch, where its
        # serial mask costs nothing, and the measured accuracy of this model was taken with it.
        self.dropout = nn.Dropout(dropout)
        self.merge = nn.Sequential(nn.Linear(embedding_dim + memory_dim, embedding_dim), nn.ReLU(),
                                   nn.Linear(embedding_dim, embedding_dim))

    def forward(self, memory: torch.Tensor, query_rows: torch.Tensor, neighbor_rows: torch.Tensor,
                mask: torch.Tensor, neighbor_dt: torch.Tensor, neighbor_edge: torch.Tensor) -> torch.Tensor:
        """``memory [U, M]`` of the distinct nodes; queries are rows ``query_rows [Q]``, their
        interactions ``[Q, k]``: neighbour rows (any valid row on padding), ``mask`` (False on
        padding), time since the interaction, edge features (``[Q, k, 0]`` when there are none)."""
        own = memory[query_rows]
        count, k = mask.shape
        heads, head_dim = self.heads, self.head_dim
        zero_time = self.time_encoder(own.new_zeros(1)).expand(count, -1)
        query = self.query(torch.cat([own, zero_time], 1)).view(count, heads, head_dim)
        # Two tables of interaction parts: neighbour memory (shared rows, read in place) and, one
        # row per real interaction, its time encoding and edge features. Padding reads row -1.
        memory_rows = neighbor_rows.masked_fill(~mask, -1)
        real = mask.reshape(-1)
        interaction_rows = torch.full((count * k,), -1, dtype=torch.int64, device=mask.device)
        interaction_rows[real] = torch.arange(int(real.sum()), device=mask.device)
        interaction_rows = interaction_rows.view(count, k)
        interactions = self.time_encoder(neighbor_dt[mask])
        if neighbor_edge.size(2):
            interactions = torch.cat([interactions, neighbor_edge[mask].to(interactions.dtype)], 1)
        split = [self.memory_dim, interactions.size(1)]
        key_memory, key_interaction = self.key.weight.view(heads, head_dim, -1).split(split, dim=2)
        value_memory, value_interaction = self.value.weight.view(heads, head_dim, -1).split(split, dim=2)
        logits = (ops.gather_dot(memory, memory_rows, torch.einsum("qhd,hdw->qhw", query, key_memory))
                  + ops.gather_dot(interactions, interaction_rows,
                                   torch.einsum("qhd,hdw->qhw", query, key_interaction))
                  + (query * self.key.bias.view(heads, head_dim)).sum(2).unsqueeze(1))  # [Q, k, H]
        logits = (logits * head_dim ** -0.5).masked_fill(~mask.unsqueeze(2), float("-inf"))
        # Nodes without earlier interactions get all -inf logits: their NaN weights become 0.
        weights = self.dropout(torch.softmax(logits, dim=1).nan_to_num(0.0))
        attended = (torch.einsum("qhw,hdw->qhd", ops.gather_weighted_sum(memory, memory_rows, weights), value_memory)
                    + torch.einsum("qhw,hdw->qhd", ops.gather_weighted_sum(interactions, interaction_rows, weights),
                                   value_interaction))
        has_any = mask.any(1, keepdim=True).to(own.dtype)
        attended = attended.reshape(count, heads * head_dim) + has_any * self.value.bias
        return self.merge(torch.cat([attended, own], 1))


class TimeProjectionEmbedding(nn.Module):
    def __init__(self, memory_dim: int, embedding_dim: int, time_scale: float = 1.0):
        super().__init__()
        self.time_scale = time_scale
        self.projection = nn.Linear(1, memory_dim)
        nn.init.normal_(self.projection.weight, 0.0, 0.1)
        nn.init.zeros_(self.projection.bias)
        self.output = nn.Identity() if embedding_dim == memory_dim else nn.Linear(memory_dim, embedding_dim)

    def forward(self, memory: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        scaled = (dt / self.time_scale).to(memory.dtype).unsqueeze(1)
        return self.output(memory * (1 + self.projection(scaled)))


class LinkScorer(nn.Module):
    def __init__(self, embedding_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * embedding_dim, embedding_dim), nn.ReLU(), nn.Linear(embedding_dim, 1))

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([source, target], 1)).squeeze(1)
