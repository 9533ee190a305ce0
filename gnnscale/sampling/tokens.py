"""Token sampling for graph transformers: the nodes whose features become a node's tokens."""
from typing import List, Sequence

import torch

from .. import ops
from ..graph import Graph
from .neighbor import mix_seed


class TokenSampler:
    """For each node, up to ``num_tokens - 1`` distinct other nodes drawn uniformly from its
    neighbourhood within ``len(fanouts)`` hops (LargeGT samples from 1 and 2 hops). Hop ``h``
    expands each node reached so far by at most ``fanouts[h]`` neighbours (-1: all), which bounds
    the work at hubs as the neighbour sampler does. Rows with fewer candidates are padded with -1.

    Sampling runs in C++ on all threads. A node's tokens depend only on ``seed``, the sampling
    round and its id, so a table built in chunks equals one built at once.
    """

    def __init__(self, graph: Graph, num_tokens: int = 100, fanouts: Sequence[int] = (20, 10), *, seed: int = 0):
        if not isinstance(graph, Graph):
            raise ValueError(f"graph must be a gnnscale.Graph, got {type(graph).__name__}")
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
            raise ValueError(f"num_tokens must be a positive int (the node itself counts), got {num_tokens!r}")
        graph.validate(check_indices=True)  # a corrupt graph fails here, not at some later batch
        self.graph = graph
        self.num_tokens = num_tokens
        self.fanouts: List[int] = ops.check_fanouts(fanouts)
        self.seed = seed

    @property
    def num_samples(self) -> int:
        return self.num_tokens - 1

    def sample(self, nodes: torch.Tensor, *, round: int = 0) -> torch.Tensor:
        """``[len(nodes), num_tokens - 1]`` int64 node ids, -1 where a node has too few neighbours.
        Each ``round`` (e.g. a resampling every few epochs) draws afresh."""
        nodes = torch.as_tensor(nodes)
        return ops.hop_token_sample(self.graph.indptr, self.graph.indices, nodes, self.num_samples, self.fanouts,
                                    seed=mix_seed(self.seed, round))
