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

from .memory import TimeEncoder


class TemporalAttentionEmbedding(nn.Module):
    """Multi-head attention whose key and value of an interaction j are ``W x_j + b`` with
    ``x_j = [memory_j, time(dt_j), edge_j]``. The projections are moved to the query side, which
    gives the same result with far less work per interaction:
    ``q_h . (W_k x_j) = (W_k^T q_h) . x_j`` and ``sum_j a_j W_v x_j = W_v sum_j a_j x_j``,
    so interactions are only gathered and dotted, never multiplied by a weight matrix. The layout
    of ``W`` follows ``x_j = [memory_j, time(dt_j), edge_j]``."""

    def __init__(self, memory_dim: int, time_dim: int, edge_dim: int, embedding_dim: int, heads: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        if embedding_dim % heads:
            raise ValueError(f"embedding_dim={embedding_dim} is not divisible by heads={heads}")
        self.heads, self.head_dim = heads, embedding_dim // heads
        self.time_encoder = TimeEncoder(time_dim)
        self.query = nn.Linear(memory_dim + time_dim, embedding_dim)
        interaction_dim = memory_dim + time_dim + edge_dim
        self.key = nn.Linear(interaction_dim, embedding_dim)
        self.value = nn.Linear(interaction_dim, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.merge = nn.Sequential(nn.Linear(embedding_dim + memory_dim, embedding_dim), nn.ReLU(),
                                   nn.Linear(embedding_dim, embedding_dim))

    def forward(self, memory: torch.Tensor, query_rows: torch.Tensor, neighbor_rows: torch.Tensor,
                mask: torch.Tensor, neighbor_dt: torch.Tensor, neighbor_edge: torch.Tensor) -> torch.Tensor:
        """``memory [U, M]`` of the distinct nodes; queries are rows ``query_rows [Q]``, their
        interactions ``[Q, k]``: neighbour rows (any valid row on padding), ``mask`` (False on
        padding), time since the interaction, edge features (``[Q, k, 0]`` when there are none)."""
        own = memory[query_rows]
        count = own.size(0)
        heads, head_dim = self.heads, self.head_dim
        zero_time = self.time_encoder(own.new_zeros(1)).expand(count, -1)
        query = self.query(torch.cat([own, zero_time], 1)).view(count, heads, head_dim)
        # The parts of x_j, kept apart (no concatenation per interaction): [Q, k, width] each.
        parts = [memory[neighbor_rows], self.time_encoder(neighbor_dt)]
        if neighbor_edge.size(2):
            parts.append(neighbor_edge)
        widths = [part.size(2) for part in parts]
        key_weights = self.key.weight.view(heads, head_dim, -1).split(widths, dim=2)
        value_weights = self.value.weight.view(heads, head_dim, -1).split(widths, dim=2)
        # Per head, broadcast products over [Q, k, width]: with inner sizes this small (k, heads)
        # they beat batched matrix products, whose backward passes are slow at these shapes.
        scale = head_dim ** -0.5
        has_any = mask.any(1, keepdim=True).to(own.dtype)
        key_bias = self.key.bias.view(heads, head_dim)
        attended = []
        for h in range(heads):
            logits = (query[:, h] * key_bias[h]).sum(1, keepdim=True)  # [Q, 1]
            for part, weight in zip(parts, key_weights):
                logits = logits + (part * (query[:, h] @ weight[h]).unsqueeze(1)).sum(2)
            logits = (logits * scale).masked_fill(~mask, float("-inf"))
            # Nodes without earlier interactions get all -inf logits: their NaN weights become 0.
            weights = self.dropout(torch.softmax(logits, dim=1).nan_to_num(0.0)).unsqueeze(2)  # [Q, k, 1]
            head = has_any * self.value.bias.view(heads, head_dim)[h]
            for part, weight in zip(parts, value_weights):
                head = head + (weights * part).sum(1) @ weight[h].t()
            attended.append(head)
        attended = torch.cat(attended, 1)
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
