"""Deep residual GCN / GraphSAGE for full-graph training, split into parts a pipeline can own.

The model is an input projection, ``num_layers`` residual graph layers and a classifier. Each graph
layer receives its neighbourhood aggregate from the caller (``aggregated = Â h``), so the same
layer runs on the whole graph in one process or on one chunk of it in a pipeline stage, where part
of the neighbourhood comes from historical embeddings.

Dropout can draw its masks from explicit generators, one per layer: a process that runs only some
layers then draws the same masks as one process running them all.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import torch
from torch import nn

from .. import ops

CONVOLUTIONS = ("gcn", "sage")


def dropout_generators(seed: int, num_layers: int, stream: int = 0, device="cpu") -> List[torch.Generator]:
    """Generator 0 drives the input dropout, generator ``l + 1`` graph layer l."""
    return [torch.Generator(device).manual_seed((seed * 1_000_003 + stream) * 1_000_003 + index)
            for index in range(num_layers + 1)]


class ResidualGraphLayer(nn.Module):
    """``h + dropout(relu(norm(W·Âh [+ W_root·h])))``: GCN, or GraphSAGE with a root weight."""

    def __init__(self, dim: int, conv: str = "gcn", norm: bool = False, dropout: float = 0.0):
        super().__init__()
        if conv not in CONVOLUTIONS:
            raise ValueError(f"unknown convolution {conv!r}; choose from {CONVOLUTIONS}")
        self.linear = nn.Linear(dim, dim)
        self.root = nn.Linear(dim, dim, bias=False) if conv == "sage" else None
        self.norm = nn.LayerNorm(dim) if norm else None
        self.dropout = dropout

    def forward(self, h: torch.Tensor, aggregated: torch.Tensor,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        z = self.linear(aggregated)
        if self.root is not None:
            z = z + self.root(h)
        if self.norm is not None:
            z = self.norm(z)
        return h + ops.dropout(torch.relu(z), self.dropout, self.training, generator)


class DeepGNN(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int, *, conv: str = "gcn",
                 dropout: float = 0.5, norm: bool = False):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.input = nn.Linear(in_dim, hidden)
        self.layers = nn.ModuleList(ResidualGraphLayer(hidden, conv, norm, dropout) for _ in range(num_layers))
        self.output = nn.Linear(hidden, out_dim)
        self.dropout = dropout

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def stage_layers(self, stages: int, stage: int) -> range:
        """The graph layers of pipeline stage ``stage`` of ``stages``: consecutive, balanced."""
        return range(self.num_layers * stage // stages, self.num_layers * (stage + 1) // stages)

    def stage_parameters(self, stages: int, stage: int) -> List[nn.Parameter]:
        """What that stage trains: its layers, plus the input projection on the first stage and the
        classifier on the last."""
        modules = [self.layers[i] for i in self.stage_layers(stages, stage)]
        modules = ([self.input] if stage == 0 else []) + modules + ([self.output] if stage == stages - 1 else [])
        return [p for module in modules for p in module.parameters()]

    def embed(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.relu(self.input(ops.dropout(x, self.dropout, self.training, generator)))

    def forward(self, x: torch.Tensor, aggregate: Callable[[torch.Tensor], torch.Tensor],
                generators: Optional[List[torch.Generator]] = None) -> torch.Tensor:
        """Whole-graph forward; ``aggregate(h)`` returns Âh (e.g. :class:`gnnscale.parallel.Propagation`)."""
        generators = generators or [None] * (self.num_layers + 1)
        h = self.embed(x, generators[0])
        for index, layer in enumerate(self.layers):
            h = layer(h, aggregate(h), generators[index + 1])
        return self.output(h)
