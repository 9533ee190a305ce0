"""Samplers: multi-hop neighbour, link (with negatives) and PyG-compatible wrappers."""
from .link import LinkNeighborSampler, LinkSample
from .negative import NegativeSampler
from .neighbor import NeighborSampler
from .subgraph import Block, SampledSubgraph

__all__ = ["Block", "LinkNeighborSampler", "LinkSample", "NegativeSampler", "NeighborSampler", "SampledSubgraph"]
