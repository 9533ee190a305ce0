"""FastRP (Chen et al., CIKM 2019): node embeddings from powers of the random-walk transition
matrix applied to a very sparse random projection, with no training.

    N_1 = S · L · R,  N_k = S · N_(k-1),  embedding = sum_k weight_k · N_k

S = D^-1 A (edge weights used when the graph has them), L = diag(degree / num_edges)^beta
re-weights nodes by degree (beta < 0 damps hubs), R is an n x dim matrix whose entries are
+-sqrt(s) with probability 1/(2s) each and 0 otherwise, s = sqrt(n) (Li et al.'s very sparse
projection). Each N_k is optionally scaled to unit rows before the weighted sum.
"""
from typing import Optional, Sequence, Tuple

import torch

from .. import ops
from ..graph import Graph


def random_walk_scale(graph: Graph) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
    """(edge weights or None, 1 / weighted out-degree per node): S = diag(scale) A_w, whose rows sum
    to 1 (rows of isolated nodes stay empty)."""
    weights = graph.edge_weight.to(torch.float32) if graph.edge_weight is not None else None
    row_sum = (torch.zeros(graph.num_nodes).index_add_(0, graph.row(), weights) if weights is not None
               else graph.degree().to(torch.float32))
    return weights, torch.where(row_sum > 0, 1.0 / row_sum.clamp_min(1e-12), torch.zeros(()))


def transition_product(graph: Graph, weights, scale: torch.Tensor, x: torch.Tensor,
                       col_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """S @ diag(col_scale) @ x: the fused C++ product on CPU, torch's CSR product elsewhere."""
    if x.device.type == "cpu":
        return ops.scaled_spmm(graph.indptr, graph.indices, x, edge_weight=weights, row_scale=scale,
                               col_scale=col_scale)
    values = (weights if weights is not None else torch.ones(graph.num_edges)) * scale[graph.row()]
    if col_scale is not None:
        values = values * col_scale[graph.indices.to(torch.int64)]
    return graph.sparse_csr(values, x.device) @ x


def sparse_projection(num_nodes: int, dim: int, *, seed: int = 0) -> torch.Tensor:
    """An n x dim very sparse random projection as a sparse CSR tensor: each entry is +-sqrt(s) with
    probability 1/(2s) and 0 otherwise, s = sqrt(n). Only the nonzero entries are drawn (a binomial
    count, then positions and signs), which is n*dim/s draws rather than n*dim."""
    s = max(1.0, num_nodes ** 0.5)
    gen = torch.Generator().manual_seed(seed)
    cells = num_nodes * dim
    count = int(torch.binomial(torch.tensor(float(cells)), torch.tensor(1.0 / s), generator=gen))
    # Distinct positions: draw with replacement and top up until `count` distinct cells are set.
    positions = torch.empty(0, dtype=torch.int64)
    while positions.numel() < count:
        extra = torch.randint(0, cells, (count - positions.numel(),), generator=gen)
        positions = torch.cat([positions, extra]).unique()  # sorted: row-major order
    signs = torch.randint(0, 2, (count,), generator=gen).to(torch.float32).mul_(2).sub_(1)
    row_pointers = torch.zeros(num_nodes + 1, dtype=torch.int64)
    row_pointers[1:] = torch.bincount(positions // dim, minlength=num_nodes).cumsum(0)
    return torch.sparse_csr_tensor(row_pointers, positions % dim, signs * s ** 0.5, (num_nodes, dim),
                                   check_invariants=False)


@torch.no_grad()
def fastrp(graph: Graph, dim: int = 512, *, weights: Sequence[float] = (0.0, 0.0, 1.0, 6.0), beta: float = -0.9,
           normalize: bool = True, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    """FastRP embeddings [num_nodes, dim] of ``graph``; one sparse product per entry of ``weights``."""
    if graph.num_nodes == 0 or graph.num_edges == 0:
        raise ValueError("the graph is empty: FastRP needs edges")
    if dim < 1 or len(weights) == 0:
        raise ValueError(f"dim must be positive and weights non-empty, got dim={dim}, weights={list(weights)}")
    device = torch.device(device)
    edge_weight, inverse_degree = random_walk_scale(graph)
    degree = graph.degree().to(torch.float32)
    scale = (degree / graph.num_edges).clamp_min(1e-12).pow(beta)
    scale[degree == 0] = 0.0
    # The first product, S L R, reads the projection's few nonzeros (sparse x) on the CPU and
    # applies L as the product's column scale.
    current = sparse_projection(graph.num_nodes, dim, seed=seed)
    if device.type != "cpu":
        current = current.to_dense().to(device)
    embedding = torch.zeros(graph.num_nodes, dim, device=device)
    for power, weight in enumerate(weights):
        current = transition_product(graph, edge_weight, inverse_degree, current,
                                     col_scale=scale if power == 0 else None)
        if weight != 0:
            term = torch.nn.functional.normalize(current, dim=1) if normalize else current
            embedding.add_(term, alpha=float(weight))
    return embedding.cpu()
