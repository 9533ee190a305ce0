"""Multi-hop neighbour sampling over a graph split into parts, one part per rank: each hop asks
every owner for its frontier nodes' draws in one batched request, and the owners draw exactly
what one machine's sampler draws (the stream of a node depends on the seed, the hop and its
position in the sample, not on where the node lives), so a sample equals the single-machine one.

Every rank calls :meth:`DistributedNeighborSampler.sample` the same number of times, as the
ranks of a data-parallel job take their batches: the requests of a hop are collectives.
"""
from typing import Optional, Sequence

import torch

from .. import ops
from ..sampling.neighbor import mix_seed
from ..sampling.subgraph import SampledSubgraph
from .exchange import exchange, group_rank, group_size, grouped_by
from .partition import GraphPart

class DistributedNeighborSampler:
    """Samples ``fanouts`` in-neighbours hop by hop around seeds this rank owns (new ids of
    ``part``), as :class:`~gnnscale.sampling.NeighborSampler` does on the whole graph: the same
    ``SampledSubgraph`` (node ids are the partition's new ids, edge ids the dataset's). ``group``:
    the process group whose rank r holds part r (None: the default group)."""

    def __init__(self, part: GraphPart, fanouts: Sequence[int], *, group=None, replace: bool = False, seed: int = 0):
        self.part, self.group, self.replace, self.seed = part, group, replace, seed
        self.fanouts = ops.check_fanouts(fanouts)
        self.world_size = group_size(group)
        if self.world_size != part.num_parts or group_rank(group) != part.part:
            raise ValueError(f"rank {group_rank(group)} of {self.world_size} must hold part {group_rank(group)} "
                             f"of a partition into as many parts, not part {part.part} of {part.num_parts}")
        self.requests = 0  # nodes this rank asked other parts to draw for
        self.served = 0    # nodes other parts asked this rank to draw for
        self._calls = 0

    def sample(self, seeds: torch.Tensor, *, seed: Optional[int] = None) -> SampledSubgraph:
        """Samples around ``seeds`` (unique new ids; any rank's, though a rank usually samples
        around its own nodes)."""
        if seed is None:
            seed = mix_seed(self.seed, self._calls)
            self._calls += 1
        seeds = torch.as_tensor(seeds, dtype=torch.int64)
        if seeds.dim() != 1 or (seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= self.part.num_nodes)):
            raise ValueError(f"seeds must be a 1-D tensor of node ids in [0, {self.part.num_nodes})")
        if torch.unique(seeds).numel() != seeds.numel():
            raise ValueError("seeds holds duplicate node ids")
        nodes, rows, cols, edges = [seeds], [], [], []
        num_sampled_nodes, num_sampled_edges = [seeds.numel()], []
        hop_begin, total = 0, seeds.numel()
        for hop, fanout in enumerate(self.fanouts):
            frontier = torch.cat(nodes)[hop_begin:]
            positions = torch.arange(hop_begin, total)
            source, dst, edge = self._draw(frontier, positions, fanout, hop, seed)
            every = torch.cat(nodes)
            new = _first_appearances(source, every)
            nodes.append(new)
            every = torch.cat([every, new])
            rows.append(_local_ids(source, every))
            cols.append(dst)
            edges.append(edge)
            num_sampled_nodes.append(new.numel())
            num_sampled_edges.append(source.numel())
            hop_begin, total = total, total + new.numel()
        return SampledSubgraph(torch.cat(nodes), _cat(rows), _cat(cols), _cat(edges), num_sampled_nodes,
                               num_sampled_edges)

    def _draw(self, frontier: torch.Tensor, positions: torch.Tensor, fanout: int, hop: int, seed: int):
        """Every frontier node's draws, from its owner: (source, target position, edge id) of
        each sampled edge, ordered by target position and, within it, as the owner drew them."""
        order, counts = grouped_by(self.part.owner_of(frontier), self.world_size)
        requests = torch.stack([frontier[order], positions[order]], dim=1)
        received, asked = exchange(requests, counts, self.group)
        self.requests += int(counts.sum() - counts[self.part.part])
        self.served += sum(asked) - asked[self.part.part]
        drawn, slot, source = ops.neighbor_draw(self.part.indptr, self.part.indices, received[:, 0] - self.part.first,
                                                received[:, 1], fanout, hop, replace=self.replace, seed=seed)
        # Answers: the number of draws per request (one row per request, in the order asked), then the draws.
        answered_counts, _ = exchange(drawn.view(-1, 1), torch.tensor(asked), self.group, incoming=counts.tolist())
        per_rank = torch.tensor([int(part.sum()) for part in drawn.split(asked)], dtype=torch.int64)
        incoming = [int(part.sum()) for part in answered_counts.view(-1).split(counts.tolist())]
        answers, _ = exchange(torch.stack([source, self.part.edge_ids[slot].to(torch.int64)], dim=1), per_rank,
                              self.group, incoming=incoming)
        # Back to the order of the frontier: a stable sort on target positions keeps each node's draws in order.
        targets = torch.repeat_interleave(positions[order], answered_counts.view(-1))
        by_target = torch.argsort(targets, stable=True)
        return answers[by_target, 0], targets[by_target], answers[by_target, 1]


def _first_appearances(source: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The ids of ``source`` not in ``known``, once each, in order of first appearance."""
    fresh = ~torch.isin(source, known)
    candidates = source[fresh]
    if candidates.numel() == 0:
        return candidates
    unique, inverse = torch.unique(candidates, return_inverse=True)
    first = torch.full((unique.numel(),), candidates.numel(), dtype=torch.int64)
    first.scatter_reduce_(0, inverse, torch.arange(candidates.numel()), reduce="amin")
    return unique[torch.argsort(first)]


def _local_ids(source: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
    """The position in ``nodes`` (unique ids) of every id of ``source``."""
    order = torch.argsort(nodes)
    return order[torch.searchsorted(nodes[order], source)]


def _cat(parts) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64)
