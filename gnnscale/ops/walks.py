"""Random walks and skip-gram training (node embedding)."""
from typing import Optional, Tuple

import torch

from . import kernels
from .checks import INDEX_DTYPES, is_known_sound_csr, check_index_tensor, check_count, check_seed, check_csr, check_topology


def random_walk(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    starts: torch.Tensor,
    length: int,
    *,
    cumulative_weight: Optional[torch.Tensor] = None,
    p: float = 1.0,
    q: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """One walk of ``length`` nodes (the start included) from each start node, ``[len(starts), length]``
    int64, padded with -1 after a node without out-edges.

    Steps are uniform over out-neighbours, or proportional to edge weight given
    ``cumulative_weight`` (the inclusive prefix sum of the CSR-ordered weights). ``p`` and ``q``
    other than 1 make node2vec's second-order walk (return parameter ``p``, in-out parameter ``q``),
    drawn by rejection: rows of ``indices`` must be sorted, as :class:`Graph` keeps them.
    Walk ``i`` depends only on ``seed`` and ``i``.
    """
    check_topology(indptr, indices)
    check_index_tensor("starts", starts, indptr.numel() - 1)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"walk length must be a positive int, got {length!r}")
    if not (p > 0 and q > 0):
        raise ValueError(f"p and q must be positive, got p={p}, q={q}")
    if cumulative_weight is not None and cumulative_weight.numel() != indices.numel():
        raise ValueError(f"cumulative_weight has {cumulative_weight.numel()} entries for {indices.numel()} edges")
    # A step is two dependent reads, mostly from cache, so checking the row and id of every step
    # would slow walks by a tenth: a CSR found sound before, or cheaper to check whole than the
    # walks are long, is checked once instead (ValueError), and the steps trust it.
    sound = is_known_sound_csr(indptr, indices)
    if not sound and starts.numel() * length >= indices.numel():
        check_csr(indptr, indices, indptr.numel() - 1)
        sound = True
    return kernels.OPS.random_walk(indptr, indices.contiguous(), starts.contiguous(), length, cumulative_weight,
                            float(p), float(q), check_seed(seed), sound)


def walk_pairs(walks: torch.Tensor, window: int, *, shrink_window: bool = True,
               keep_prob: Optional[torch.Tensor] = None, seed: int = 0) -> torch.Tensor:
    """Every ``(walk[j], walk[i])`` with ``0 < |i - j| <= window`` of each walk (-1 padding
    skipped), ``[num_pairs, 2]`` int64. The pairs around one centre ``walk[i]`` stay together as
    a group (the centre second in each), and groups are shuffled within blocks of 2^17. With
    ``shrink_window`` each position draws its own window from [1, window] (word2vec's dynamic
    window: about half the pairs, near contexts weighted more). ``keep_prob`` (one per node)
    drops each visit of node v with probability 1 - keep_prob[v] before the windows are formed
    (word2vec's subsampling of frequent tokens)."""
    if not isinstance(walks, torch.Tensor) or walks.dim() != 2 or walks.dtype not in INDEX_DTYPES:
        raise ValueError("walks must be a 2-D int32/int64 tensor [num_walks, length]")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    if keep_prob is not None:
        keep_prob = keep_prob.to(torch.float64).contiguous()
        if walks.numel() and int(walks.max()) >= keep_prob.numel():
            raise ValueError(f"walks hold node {int(walks.max())} but keep_prob covers {keep_prob.numel()} nodes")
    return kernels.OPS.walk_pairs(walks, window, bool(shrink_window), keep_prob, check_seed(seed))


def sgns_train(
    vertex: torch.Tensor,
    context: torch.Tensor,
    pairs: torch.Tensor,
    negative_table: Tuple[torch.Tensor, torch.Tensor],
    *,
    negatives: int = 5,
    lr: Tuple[float, float] = (0.025, 0.025),
    share_negatives: int = 1,
    seed: int = 0,
) -> float:
    """Skip-gram with negative sampling, in place: for each pair ``(u, v)`` raise
    ``vertex[u] · context[v]`` and lower ``vertex[u] · context[n]`` for ``negatives`` nodes drawn
    from ``negative_table`` (an :func:`alias_table`). Consecutive pairs with the same ``v`` (up to
    64, as :func:`walk_pairs` emits them) form a group: they share one draw of negatives and all
    their rows are updated once, from gradients taken before the group; ``share_negatives``
    consecutive groups share a draw. The learning rate falls linearly from
    ``lr[0]`` to ``lr[1]`` across the pairs. Runs lock-free on all threads (Hogwild), so with more
    than one thread the result varies slightly from run to run. Pass the same tensor as ``vertex``
    and ``context`` for first-order (LINE-1) training. Returns the mean loss per pair.
    """
    for name, table in (("vertex", vertex), ("context", context)):
        if table.dtype != torch.float32 or table.dim() != 2 or not table.is_contiguous() or table.device.type != "cpu":
            raise ValueError(f"{name} embeddings must be a contiguous 2-D float32 CPU tensor")
    if vertex.shape != context.shape:
        raise ValueError(f"vertex {tuple(vertex.shape)} and context {tuple(context.shape)} shapes differ")
    if pairs.dim() != 2 or pairs.size(1) != 2 or pairs.dtype not in INDEX_DTYPES:
        raise ValueError("pairs must be an int32/int64 tensor of shape [num_pairs, 2]")
    prob, alias = negative_table
    if prob.numel() != vertex.size(0):
        raise ValueError(f"the negative table covers {prob.numel()} nodes, the embeddings {vertex.size(0)}")
    share = check_count("share_negatives", share_negatives)
    if share < 1:
        raise ValueError("share_negatives must be at least 1")
    return kernels.OPS.sgns_train(vertex, context, pairs, prob, alias, check_count("negatives", negatives),
                           float(lr[0]), float(lr[1]), share, check_seed(seed))
