"""Samplers: multi-hop neighbour, link (with negatives), temporal, graph-transformer tokens and
PyG-compatible wrappers.

Every sampler has one shape: ``sample(inputs, *, seed)`` takes the seeds of one batch (nodes,
edges, or nodes with times) and returns one sample, and all its randomness comes from ``seed``.
The loaders draw that seed one way, ``mix_seed(loader_seed, epoch, batch)``, so a batch is a
function of (seed, epoch, batch) alone: the same on every run, resumable from any epoch, and the
same whichever thread prepares it. Without ``seed`` a sampler counts its calls instead."""
from .link import LinkNeighborSampler, LinkSample
from .negative import NegativeSampler
from .neighbor import NeighborSampler
from .subgraph import Block, SampledSubgraph
from .temporal import TemporalNeighbors, TemporalNeighborSampler
from .tokens import TokenSampler

__all__ = ["Block", "LinkNeighborSampler", "LinkSample", "NegativeSampler", "NeighborSampler", "SampledSubgraph",
           "TemporalNeighborSampler", "TemporalNeighbors", "TokenSampler"]
