"""PRES (Su, Zou and Wu, ICLR 2024): prediction-correction of node memory for large temporal batches.

Inside a temporal batch every event reads the memory as it stood before the batch, so a node
with several events in the batch misses the updates of its earlier ones (temporal
discontinuity). PRES keeps, per node, a model of how its memory changes from one update to the
next; when a batch updates a node, the memory computed from its (possibly stale) messages is
*corrected* by fusing it with the *predicted* memory, previous memory plus the expected change:

    s = gamma * s_computed + (1 - gamma) * (s_previous + predicted_change)

with gamma fixed or learned (through a sigmoid). The change model is fitted by maximum likelihood
from the observed changes: per node, a Gaussian mixture (the paper's choice; isotropic components,
fitted by online EM) or, as a cheaper documented option, an exponential moving average of the
changes. The memory-coherence objective adds ``beta * (1 - cos(s, s_previous))`` averaged over the
updated nodes, which favours memory that moves smoothly between updates, the condition under
which stale in-batch reads stay close to the sequential ones.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

TRENDS = ("gmm", "ema")


class MemoryTrend:
    """Per-node model of the memory change ``delta = s_new - s_previous`` (state, not parameters)."""

    def __init__(self, num_nodes: int, dim: int, kind: str = "gmm", components: int = 2, ema: float = 0.1,
                 min_step: float = 0.05, seed: int = 0):
        if kind not in TRENDS:
            raise ValueError(f"trend must be one of {TRENDS}, got {kind!r}")
        self.kind, self.dim, self.components, self.ema, self.min_step = kind, dim, components, ema, min_step
        self.seed = seed
        self.num_nodes = 0
        self.grow(num_nodes)

    def grow(self, num_nodes: int) -> None:
        if num_nodes <= self.num_nodes:
            return
        fresh = self._initial(num_nodes - self.num_nodes)
        if self.num_nodes:
            fresh = {name: torch.cat([old, fresh[name]]) for name, old in self.state().items()}
        self.load_state(fresh)

    def reset(self) -> None:
        self.load_state(self._initial(self.num_nodes))

    def state(self) -> dict:
        names = ("mean",) if self.kind == "ema" else ("weight", "mean", "square", "seen")
        return {name: getattr(self, name) for name in names}

    def load_state(self, state: dict) -> None:
        for name, tensor in state.items():
            setattr(self, name, tensor)
        self.num_nodes = state["mean"].size(0)

    def predict(self, nodes: torch.Tensor) -> torch.Tensor:
        """Expected change of each node's memory ``[len(nodes), dim]``."""
        if self.kind == "ema":
            return self.mean[nodes]
        weight, mean = self.weight[nodes], self.mean[nodes]  # [B, K], [B, K, D] (statistics)
        return mean.sum(1) / weight.sum(1, keepdim=True)  # sum_k pi_k mu_k, with pi_k = w_k / sum w

    @torch.no_grad()
    def observe(self, nodes: torch.Tensor, delta: torch.Tensor) -> None:
        """One maximum-likelihood step on the observed changes of ``nodes`` (unique)."""
        delta = delta.detach().to(self.mean.device, torch.float32)
        if self.kind == "ema":
            self.mean[nodes] = (1 - self.ema) * self.mean[nodes] + self.ema * delta
            return
        # Online EM on the sufficient statistics (w_k, w_k mu_k, w_k E||x||^2) of an isotropic mixture.
        weight, first, square = self.weight[nodes], self.mean[nodes], self.square[nodes]
        mu = first / weight.unsqueeze(2)
        variance = (square / weight - mu.pow(2).sum(2)).clamp_min(1e-6) / self.dim + 1e-6
        distance = (delta.unsqueeze(1) - mu).pow(2).sum(2)
        log_prob = (weight / weight.sum(1, keepdim=True)).log() - 0.5 * self.dim * variance.log() \
            - distance / (2 * variance)
        responsibility = torch.softmax(log_prob, dim=1)
        seen = self.seen[nodes] + 1
        step = torch.maximum(1.0 / (seen.float() + 1), torch.tensor(self.min_step)).unsqueeze(1)
        self.weight[nodes] = (1 - step) * weight + step * responsibility
        self.mean[nodes] = (1 - step.unsqueeze(2)) * first + (step * responsibility).unsqueeze(2) * delta.unsqueeze(1)
        self.square[nodes] = (1 - step) * square + step * responsibility * delta.pow(2).sum(1, keepdim=True)
        self.seen[nodes] = seen

    def _initial(self, count: int) -> dict:
        if self.kind == "ema":
            return {"mean": torch.zeros(count, self.dim)}
        generator = torch.Generator().manual_seed(self.seed + self.num_nodes)
        weight = torch.full((count, self.components), 1.0 / self.components)
        # Distinct small component means break the symmetry between components.
        mu = 0.01 * torch.randn(count, self.components, self.dim, generator=generator)
        return {"weight": weight, "mean": weight.unsqueeze(2) * mu,
                "square": weight * (mu.pow(2).sum(2) + 0.01 * self.dim),
                "seen": torch.zeros(count, dtype=torch.int64)}


class PRES(nn.Module):
    """The prediction-correction step and the coherence loss around a :class:`NodeMemory` update."""

    def __init__(self, num_nodes: int, memory_dim: int, *, trend: str = "gmm", gamma: float = 0.9,
                 learn_gamma: bool = True, coherence_weight: float = 0.1, components: int = 2, seed: int = 0):
        super().__init__()
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        self.trend = MemoryTrend(num_nodes, memory_dim, trend, components=components, seed=seed)
        logit = math.log(gamma / (1 - gamma)) if gamma < 1 else 20.0
        self.gamma_logit = nn.Parameter(torch.tensor(logit), requires_grad=learn_gamma)
        self.coherence_weight = coherence_weight

    @property
    def gamma(self) -> torch.Tensor:
        return torch.sigmoid(self.gamma_logit)

    def correct(self, nodes: torch.Tensor, previous: torch.Tensor, computed: torch.Tensor,
                updated_rows: torch.Tensor) -> torch.Tensor:
        """Fuses the computed memory of the rows that were updated with their prediction."""
        if updated_rows.numel() == 0:
            return computed
        predicted = previous[updated_rows] + self.trend.predict(nodes[updated_rows].cpu()).to(previous.device)
        fused = self.gamma * computed[updated_rows] + (1 - self.gamma) * predicted
        return computed.index_put((updated_rows,), fused)

    def coherence_loss(self, previous: torch.Tensor, memory: torch.Tensor, updated_rows: torch.Tensor) -> torch.Tensor:
        if updated_rows.numel() == 0 or self.coherence_weight == 0:
            return memory.new_zeros(())
        before, after = previous[updated_rows], memory[updated_rows]
        # Rows whose memory is still all zero (never updated) have no direction to keep.
        moved = before.norm(dim=1) > 0
        if not bool(moved.any()):
            return memory.new_zeros(())
        return self.coherence_weight * (1 - F.cosine_similarity(after[moved], before[moved], dim=1)).mean()
