"""Samplers: multi-hop neighbour, link (with negatives), graph-transformer tokens and PyG-compatible
wrappers."""
from .link import LinkNeighborSampler, LinkSample
from .negative import NegativeSampler
from .neighbor import NeighborSampler
from .subgraph import Block, SampledSubgraph
from .tokens import TokenSampler

__all__ = ["Block", "LinkNeighborSampler", "LinkSample", "NegativeSampler", "NeighborSampler", "SampledSubgraph",
           "TokenSampler"]
