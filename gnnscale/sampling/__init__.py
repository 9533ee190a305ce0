"""Samplers: multi-hop neighbour, link (with negatives), temporal, graph-transformer tokens and
PyG-compatible wrappers."""
from .link import LinkNeighborSampler, LinkSample
from .negative import NegativeSampler
from .neighbor import NeighborSampler
from .subgraph import Block, SampledSubgraph
from .temporal import TemporalNeighbors, TemporalNeighborSampler
from .tokens import TokenSampler

__all__ = ["Block", "LinkNeighborSampler", "LinkSample", "NegativeSampler", "NeighborSampler", "SampledSubgraph",
           "TemporalNeighborSampler", "TemporalNeighbors", "TokenSampler"]
