"""Multi-hop neighbour sampling over a Graph's in-edges (the C++ kernel in csrc/cpu)."""
from typing import List, Optional, Sequence, Union

import torch

from .. import ops
from ..graph import Graph
from .subgraph import SampledSubgraph


def mix_seed(*parts: int) -> int:
    """A well-spread 63-bit seed from several ints (base seed, epoch, batch index...)."""
    value = 0x243F6A8885A308D3
    for part in parts:
        value = (value ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * 0x100000001B3 & 0xFFFFFFFFFFFFFFFF
        value ^= value >> 29
    return value & 0x7FFFFFFFFFFFFFFF


class NeighborSampler:
    """Samples, for each seed, ``fanouts[0]`` in-neighbours, then ``fanouts[1]`` for each of those,
    and so on (-1 takes every neighbour). Uniform without replacement by default;
    ``replace=True`` samples with replacement; ``weighted=True`` draws proportionally to
    ``graph.edge_weight``. Runs on all CPU threads; a sample depends only on the seeds and ``seed``.

    With ``device='cuda'`` the same sampling runs on the GPU (uniform draws only), with
    ``indptr`` copied to GPU memory and ``indices`` either copied too (``indices_on='device'``)
    or kept in pinned host memory that the kernel reads in place (``indices_on='host'``), for
    graphs whose edges do not fit the GPU. GPU and CPU draw the same sample for the same seed.
    """

    def __init__(self, graph: Graph, fanouts: Sequence[int], *, replace: bool = False, weighted: bool = False,
                 seed: int = 0, device: Union[str, torch.device] = "cpu", indices_on: str = "device"):
        if not isinstance(graph, Graph):
            raise ValueError(f"graph must be a gnnscale.Graph, got {type(graph).__name__}")
        graph.validate(check_indices=False)
        self.graph = graph
        self.fanouts: List[int] = ops.check_fanouts(fanouts)
        if replace and max(self.fanouts) > ops.MAX_OUTPUT_ENTRIES:
            raise ValueError(f"fanout {max(self.fanouts)} with replacement draws that many edges per node, more than "
                             f"the {ops.MAX_OUTPUT_ENTRIES} one batch may hold")
        self.replace = replace
        self.seed = seed
        incoming = graph.csc()  # transposing checks every row and id of the graph (ValueError)
        self.indptr, self.indices = incoming.indptr, incoming.indices
        self.edge_ids = incoming.edge_ids  # CSC slot -> global edge id
        self.weight = None
        if weighted:
            if graph.edge_weight is None:
                raise ValueError("weighted sampling needs graph.edge_weight")
            self.weight = ops.check_edge_weights(incoming.edge_weight, incoming.num_edges)
        self.device = torch.device(device)
        if self.device.type == "cuda":
            self._move_to_gpu(indices_on)
        elif self.device.type != "cpu":
            raise ValueError(f"device must be cpu or cuda, got {device!r}")
        self._calls = 0

    def _move_to_gpu(self, indices_on: str) -> None:
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but no CUDA GPU is visible")
        if self.weight is not None:
            raise ValueError("weighted sampling runs on the CPU; use device='cpu' or weighted=False")
        if indices_on not in ("device", "host"):
            raise ValueError(f"indices_on must be 'device' or 'host', got {indices_on!r}")
        self.indptr = self.indptr.to(self.device)
        self.edge_ids = self.edge_ids.to(self.device)
        self.indices = self.indices.to(self.device) if indices_on == "device" else self.indices.pin_memory()

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    def sample(self, seeds: torch.Tensor, *, seed: Optional[int] = None) -> SampledSubgraph:
        """Samples around ``seeds`` (unique node ids). Without ``seed``, successive calls draw
        successive streams of the sampler's base seed."""
        if seed is None:
            seed = mix_seed(self.seed, self._calls)
            self._calls += 1
        seeds = torch.as_tensor(seeds).to(self.device)
        node, row, col, slot, num_nodes, num_edges = ops.neighbor_sample(
            self.indptr, self.indices, seeds, self.fanouts, replace=self.replace, weight=self.weight, seed=seed)
        return SampledSubgraph(node, row, col, self.edge_ids[slot], num_nodes.tolist(), num_edges.tolist())
