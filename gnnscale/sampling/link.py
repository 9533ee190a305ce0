"""Link sampling: seed edges plus negatives, then the neighbourhoods of all their endpoints."""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from ..distributed.ranks import span
from ..graph import Graph
from .negative import NegativeSampler
from .neighbor import NeighborSampler, mix_seed
from .subgraph import SampledSubgraph


@dataclass
class LinkSample:
    """``edge_label_index``: local (source, target) ids of the positive then the negative pairs,
    ``edge_label``: 1 for positives, 0 for negatives (PyG's binary link-sampling layout)."""

    subgraph: SampledSubgraph
    edge_label_index: torch.Tensor
    edge_label: torch.Tensor

    def to_pyg(self, x: Optional[torch.Tensor] = None):
        data = self.subgraph.to_pyg(x)
        data.edge_label_index = self.edge_label_index
        data.edge_label = self.edge_label
        return data


class LinkNeighborSampler:
    """Expands the endpoints of seed edges (and of ``num_negatives`` negative pairs per positive,
    drawn by ``negative``) with a :class:`NeighborSampler`."""

    def __init__(self, graph: Graph, fanouts: Sequence[int], *, negative: Optional[NegativeSampler] = None,
                 num_negatives: int = 1, corrupt: str = "target", replace: bool = False, weighted: bool = False,
                 seed: int = 0):
        if num_negatives < 0:
            raise ValueError(f"num_negatives must be non-negative, got {num_negatives}")
        if num_negatives and negative is None:
            negative = NegativeSampler(graph, seed=seed)
        self.neighbors = NeighborSampler(graph, fanouts, replace=replace, weighted=weighted, seed=seed)
        self.negative = negative
        self.num_negatives = num_negatives
        self.corrupt = check_corrupt(corrupt)
        self.seed = seed
        self._calls = 0

    def sample(self, src: torch.Tensor, dst: torch.Tensor, *, seed: Optional[int] = None,
               share: Tuple[int, int] = (0, 1)) -> LinkSample:
        """Negatives for the seed edges, then the neighbourhoods of all endpoints. With ``share=(rank,
        world_size)``, the negatives are drawn for all the seed edges and rank ``rank`` keeps its span
        of the positives with their negatives: data-parallel ranks split one batch's draw."""
        if seed is None:
            seed = mix_seed(self.seed, 0x4C4B, self._calls)
            self._calls += 1
        src, dst = torch.as_tensor(src, dtype=torch.int64), torch.as_tensor(dst, dtype=torch.int64)
        if src.dim() != 1 or src.shape != dst.shape:
            raise ValueError(f"src and dst must be 1-D and of equal length, got {tuple(src.shape)} and {tuple(dst.shape)}")
        if src.numel() == 0:
            raise ValueError("no seed edges given")
        pairs, labels = with_negatives(src, dst, self.negative, self.num_negatives, seed=mix_seed(seed, 1),
                                       corrupt=self.corrupt)
        pairs, labels = share_pairs(pairs, labels, src.numel(), self.num_negatives, *share)
        seeds, inverse = torch.unique(pairs.flatten(), return_inverse=True)
        subgraph = self.neighbors.sample(seeds, seed=mix_seed(seed, 2))
        return LinkSample(subgraph, inverse.view(2, -1), labels)


def share_pairs(pairs: torch.Tensor, labels: torch.Tensor, num_positives: int, num_negatives: int, rank: int,
                world_size: int):
    """Rank ``rank``'s span of the positives of :func:`with_negatives`' output, each with its own
    ``num_negatives`` negatives (stored after all positives, one block per positive)."""
    if world_size == 1:
        return pairs, labels
    start, stop = span(num_positives, rank, world_size)
    keep = torch.cat([torch.arange(start, stop),
                      torch.arange(num_positives + start * num_negatives, num_positives + stop * num_negatives)])
    return pairs[:, keep], labels[keep]


CORRUPTIONS = ("target", "both")


def check_corrupt(corrupt: str) -> str:
    if corrupt not in CORRUPTIONS:
        raise ValueError(f"corrupt must be one of {CORRUPTIONS}, got {corrupt!r}")
    return corrupt


def with_negatives(src: torch.Tensor, dst: torch.Tensor, negative: Optional[NegativeSampler], num_negatives: int,
                   *, seed: int, corrupt: str = "target"):
    """The positive pairs followed by ``num_negatives`` negative pairs per positive:
    ``([2, P] node ids, [P] 1/0 labels)``. ``corrupt='target'`` keeps each positive's source and
    draws the target by ``negative``; ``'both'`` draws the source too (random non-edges, as PyG's
    binary negative sampling and OGB's examples), so popular nodes are rarer among negatives than
    among positives, as they are in OGB's random evaluation negatives."""
    labels = [torch.ones(src.numel())]
    if num_negatives:
        if corrupt == "both":
            sources = negative.sample_nodes(src.numel() * num_negatives, seed=mix_seed(seed, 0x5C))
            negatives = negative.sample(sources, 1, seed=seed).flatten()
        else:
            sources = src.repeat_interleave(num_negatives)
            negatives = negative.sample(src, num_negatives, seed=seed).flatten()
        src = torch.cat([src, sources])
        dst = torch.cat([dst, negatives])
        labels.append(torch.zeros(negatives.numel()))
    return torch.stack([src, dst]), torch.cat(labels)
