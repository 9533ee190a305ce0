"""Neighbour, negative, token and temporal sampling kernels."""
from typing import List, Optional, Tuple

import torch

from . import kernels
from .checks import check_index_tensor, check_count, check_seed, check_topology, check_fanouts


def neighbor_sample(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    seeds: torch.Tensor,
    fanouts: List[int],
    *,
    replace: bool = False,
    weight: Optional[torch.Tensor] = None,
    seed: int = 0,
) -> List[torch.Tensor]:
    """Multi-hop sampling of in-neighbours on a CSC graph (``indices[indptr[v]:indptr[v+1]]`` are
    the sources of the edges into v). ``fanouts[h]`` neighbours per node at hop h, -1 for all.

    Returns ``[node, row, col, slot, num_sampled_nodes, num_sampled_edges]``: unique global node
    ids (seeds first, then each hop's new nodes), local (source, target) ids of every sampled
    edge, its CSC slot, and per-hop counts. The kernel checks each row and id it reads, and
    refuses a hop that would sample more than 2^31 edges with replacement.
    """
    check_index_tensor("seeds", seeds, indptr.numel() - 1)
    if seeds.numel() == 0:
        raise ValueError("seeds is empty: give at least one seed node")
    seeds = seeds.to(torch.int64).contiguous()
    if torch.unique(seeds).numel() != seeds.numel():
        raise ValueError("seeds holds duplicate node ids")
    fanouts = check_fanouts(fanouts)
    if weight is not None:
        weight = weight.to(torch.float64).contiguous()
    return kernels.OPS.neighbor_sample(indptr.contiguous(), indices.contiguous(), seeds, fanouts, replace, weight,
                                check_seed(seed))


def neighbor_draw(indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor,
                  fanout: int, hop: int, *, replace: bool = False, weight: Optional[torch.Tensor] = None,
                  seed: int = 0) -> List[torch.Tensor]:
    """One hop of :func:`neighbor_sample` for some of its frontier: the in-neighbours CSC rows
    ``rows`` draw when they stand at frontier ``positions`` of hop ``hop`` of a sample with
    ``seed``, exactly as the multi-hop kernel draws them. Returns ``[count, slot, source]``: the
    draws per row, and each draw's CSC slot and source id (row by row, ascending slots)."""
    for name, values in (("rows", rows), ("positions", positions)):
        if not isinstance(values, torch.Tensor) or values.dim() != 1:
            raise ValueError(f"{name} must be a 1-D tensor")
    if isinstance(hop, bool) or not isinstance(hop, int) or hop < 0:
        raise ValueError(f"hop must be a non-negative int, got {hop!r}")
    (fanout,) = check_fanouts([fanout])
    if weight is not None:
        weight = weight.to(torch.float64).contiguous()
    return kernels.OPS.neighbor_draw(indptr.contiguous(), indices.contiguous(), rows.to(torch.int64).contiguous(),
                                     positions.to(torch.int64).contiguous(), fanout, hop, replace, weight,
                                     check_seed(seed))


def alias_table(weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Vose alias table (probability, alias) for O(1) draws proportional to ``weight``."""
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1 or weight.numel() == 0:
        raise ValueError("weight must be a non-empty 1-D tensor")
    weight = weight.to(torch.float64)
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
        raise ValueError("weights must be finite and non-negative")
    if not bool((weight > 0).any()):
        raise ValueError("weights must not all be zero")
    return kernels.OPS.alias_table(weight.contiguous())


def alias_sample(prob: torch.Tensor, alias: torch.Tensor, num_samples: int, *, seed: int = 0) -> torch.Tensor:
    """``num_samples`` draws from an alias table (int64 ids)."""
    return kernels.OPS.alias_sample(prob, alias, check_count("num_samples", num_samples), check_seed(seed))


def negative_tails(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    src: torch.Tensor,
    num_per_source: int,
    *,
    table: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
    reject_edges: bool = True,
    max_tries: int = 10,
    seed: int = 0,
) -> torch.Tensor:
    """For each source u, ``num_per_source`` targets v drawn uniformly (or from an alias
    ``table``); with ``reject_edges`` a draw that is an edge u->v of the CSR graph (neighbour
    lists must be sorted) or u itself is redrawn, up to ``max_tries`` times. Returns ``[M, k]``."""
    check_index_tensor("src", src, indptr.numel() - 1)
    if max_tries < 1:
        raise ValueError(f"max_tries must be at least 1, got {max_tries}")
    prob, alias = table if table is not None else (None, None)
    return kernels.OPS.negative_tails(indptr.contiguous(), indices.contiguous(), src.to(torch.int64).contiguous(),
                               check_count("num_per_source", num_per_source), prob, alias, reject_edges,
                               max_tries, check_seed(seed))


def hop_token_sample(indptr: torch.Tensor, indices: torch.Tensor, nodes: torch.Tensor, num_samples: int,
                     fanouts: List[int], *, seed: int = 0) -> torch.Tensor:
    """``[len(nodes), num_samples]`` int64: for each node, up to ``num_samples`` distinct other
    nodes drawn uniformly from its neighbourhood within ``len(fanouts)`` hops, where hop ``h``
    expands every node reached by hop ``h-1`` by at most ``fanouts[h]`` neighbours (-1: all).
    Rows with fewer candidates are padded with -1. A node's row depends only on ``seed`` and its id.
    """
    check_topology(indptr, indices)
    check_index_tensor("nodes", nodes, indptr.numel() - 1)
    fanouts = check_fanouts(fanouts)
    return kernels.OPS.hop_token_sample(indptr.contiguous(), indices.contiguous(), nodes.to(torch.int64).contiguous(),
                                 check_count("num_samples", num_samples), fanouts, check_seed(seed))


def temporal_neighbor_sample(indptr: torch.Tensor, neighbors: torch.Tensor, edge_ids: torch.Tensor,
                             edge_times: torch.Tensor, nodes: torch.Tensor, times: torch.Tensor, k: int, *,
                             event_limit: Optional[torch.Tensor] = None, most_recent: bool = True,
                             seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each query ``(nodes[i], times[i])``, up to ``k`` of the node's events strictly before
    ``times[i]`` (and with an id below ``event_limit[i]`` when given) from a time-sorted CSR: the
    most recent ones, or distinct ones uniformly at random. Returns ``(neighbors, edge_ids,
    times)``, each ``[len(nodes), k]`` in chronological order, padded with -1 (times with 0)."""
    check_topology(indptr, neighbors, "neighbors")
    check_index_tensor("nodes", nodes, indptr.numel() - 1)
    times = torch.as_tensor(times, dtype=torch.float64).reshape(-1).contiguous()
    if times.numel() != nodes.numel():
        raise ValueError(f"times must hold one time per node: {times.numel()} times for {nodes.numel()} nodes")
    if torch.isnan(times).any():
        raise ValueError("times holds NaN")
    if event_limit is not None:
        event_limit = torch.as_tensor(event_limit, dtype=torch.int64).reshape(-1).contiguous()
        if event_limit.numel() != nodes.numel():
            raise ValueError("event_limit must hold one event id per node")
    return kernels.OPS.temporal_neighbor_sample(indptr.contiguous(), neighbors.contiguous(), edge_ids.contiguous(),
                                         edge_times.contiguous(), nodes.to(torch.int64).contiguous(), times,
                                         event_limit, check_count("k", k), bool(most_recent), check_seed(seed))
