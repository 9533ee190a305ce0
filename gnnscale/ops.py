"""Typed entry points to the gnnscale C++/CUDA operators.

This is the only module that calls ``torch.ops.gnnscale``. Each wrapper checks its arguments once,
here or at the top of its C++ kernel, and raises ``ValueError`` naming the problem. Graph topology
(row pointers, neighbour ids) may come from a file and is not range-checked here: the kernels
check every row and id in the pass that reads it and raise ``ValueError`` after that pass, so a
corrupt graph costs no extra O(E) pass per call and never crashes the process. Output sizes are
refused above 2^31 entries or the memory available, before anything is allocated.
"""
import weakref
from typing import List, Optional, Tuple

import torch
from torch.utils.weak import WeakIdKeyDictionary

from . import _extension

_extension.load()
_OPS = torch.ops.gnnscale

INDEX_DTYPES = (torch.int32, torch.int64)
# The most entries one output of one kernel call may hold (kMaxOutputEntries in csrc/cpu/checks.h).
MAX_OUTPUT_ENTRIES = 2**31
# Square CSRs found sound (row pointers well formed, every id a node), by tensor identity and
# version: an entry goes with its tensors, and an in-place change through torch (a new version)
# voids it; a change made behind torch's back (through a numpy view of the same memory) is not seen.
_SOUND_CSRS = WeakIdKeyDictionary()


def remember_sound_csr(indptr: torch.Tensor, indices: torch.Tensor) -> None:
    """Notes that (indptr, indices) is a sound square CSR, as a full check or a kernel's pass over
    every row and id found it."""
    _SOUND_CSRS[indices] = (weakref.ref(indptr), indptr._version, indices._version)


def is_known_sound_csr(indptr: torch.Tensor, indices: torch.Tensor) -> bool:
    """Whether (indptr, indices), unchanged since, was found sound in this process."""
    entry = _SOUND_CSRS.get(indices)
    return entry is not None and entry[0]() is indptr and entry[1] == indptr._version \
        and entry[2] == indices._version


def check_index_tensor(name: str, index: torch.Tensor, num_nodes: Optional[int] = None) -> None:
    """Raises ValueError unless ``index`` is a 1-D int32/int64 tensor of ids in [0, num_nodes)."""
    if not isinstance(index, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(index).__name__}")
    if index.dtype not in INDEX_DTYPES:
        raise ValueError(f"{name} must be int32 or int64, got {index.dtype}")
    if index.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(index.shape)}")
    if index.numel() == 0:
        return
    low, high = torch.aminmax(index)
    if int(low) < 0:
        raise ValueError(f"{name} holds a negative id ({int(low)})")
    if num_nodes is not None and int(high) >= num_nodes:
        raise ValueError(f"{name} holds id {int(high)}, out of range for {num_nodes} nodes")


def resolve_device(device) -> torch.device:
    """``device`` as a torch.device with its index: "cuda" is the current GPU ("cuda:0" mostly), so
    devices compare equal however they were named."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


def check_device(device) -> torch.device:
    """``device`` as resolve_device gives it, refused now if this torch cannot use it, not
    at the first batch."""
    try:
        resolved = resolve_device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {device!r} is not a device torch knows: {error}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but torch has no CUDA device")
        if resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} requested but torch sees {torch.cuda.device_count()} "
                             f"CUDA device(s)")
    return resolved


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def coo_to_csr(
    row: torch.Tensor,
    col: torch.Tensor,
    num_nodes: int,
    *,
    drop_self_loops: bool = False,
    drop_duplicates: bool = False,
    symmetrize: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Builds CSR from edges ``row[i] -> col[i]``.

    Returns ``(indptr, indices, perm)``: ``indptr`` int64, ``indices`` in the dtype of ``col``
    with each row's neighbours sorted, and ``perm[k]`` the input edge that CSR slot ``k`` came
    from (for a reverse edge added by ``symmetrize``, the edge it reverses). ``drop_duplicates``
    keeps the first (lowest-numbered) copy of each edge.
    """
    num_nodes = _check_count("num_nodes", num_nodes)
    check_index_tensor("row", row, num_nodes)
    check_index_tensor("col", col, num_nodes)
    if row.dtype != col.dtype:
        raise ValueError(f"row and col must share a dtype, got {row.dtype} and {col.dtype}")
    if row.numel() != col.numel():
        raise ValueError(f"row and col differ in length: {row.numel()} vs {col.numel()}")
    if row.device != col.device:
        raise ValueError(f"row and col are on different devices: {row.device} vs {col.device}")
    indptr, indices, perm = _OPS.coo_to_csr(
        row.contiguous(), col.contiguous(), num_nodes, drop_self_loops, drop_duplicates, symmetrize
    )
    remember_sound_csr(indptr, indices)  # built from range-checked ids
    return indptr, indices, perm


def csr_to_csc(
    indptr: torch.Tensor, indices: torch.Tensor, num_cols: int
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Transposes a CSR matrix whose column ids are below ``num_cols``.

    Returns ``(indptr, indices, perm)`` of the transpose, rows of each column in ascending order,
    ``perm[k]`` being the CSR slot that transposed slot ``k`` came from. ``indptr`` and the column
    ids are checked by the kernel as it reads them, unless the (square) CSR was found sound before.
    """
    num_cols = _check_count("num_cols", num_cols)
    square = num_cols == indptr.numel() - 1  # the memo is about square CSRs only
    sound = square and is_known_sound_csr(indptr, indices)
    transposed = _OPS.csr_to_csc(indptr.contiguous(), indices.contiguous(), num_cols, sound)
    if square:  # the kernel found (or was told) every row and id sound
        if not sound:
            remember_sound_csr(indptr, indices)
        remember_sound_csr(transposed[0], transposed[1])
    return transposed


def degree(index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Counts how often each id in [0, num_nodes) occurs in ``index`` (int64 result)."""
    num_nodes = _check_count("num_nodes", num_nodes)
    check_index_tensor("index", index, num_nodes)
    return _OPS.degree(index.contiguous(), num_nodes)


def check_csr(indptr: torch.Tensor, indices: torch.Tensor, num_cols: int, *, check_indices: bool = True) -> None:
    """Raises ValueError unless (indptr, indices) is a well-formed CSR over ``num_cols`` columns."""
    if not isinstance(indptr, torch.Tensor) or indptr.dtype != torch.int64 or indptr.dim() != 1:
        raise ValueError("indptr must be a 1-D int64 tensor")
    if indptr.numel() == 0:
        raise ValueError("indptr must hold at least one entry (num_nodes + 1 in all)")
    if int(indptr[0]) != 0:
        raise ValueError(f"indptr must start at 0, starts at {int(indptr[0])}")
    if indptr.numel() > 1 and bool((indptr[1:] < indptr[:-1]).any()):
        row = int(torch.nonzero(indptr[1:] < indptr[:-1])[0])
        raise ValueError(f"indptr is not monotone: indptr[{row + 1}] < indptr[{row}]")
    if not isinstance(indices, torch.Tensor) or indices.dtype not in INDEX_DTYPES or indices.dim() != 1:
        raise ValueError("indices must be a 1-D int32 or int64 tensor")
    if int(indptr[-1]) != indices.numel():
        raise ValueError(f"indptr ends at {int(indptr[-1])} but there are {indices.numel()} indices")
    if check_indices:
        check_index_tensor("indices", indices, num_cols)
        if num_cols == indptr.numel() - 1:
            remember_sound_csr(indptr, indices)


def _check_topology(indptr: torch.Tensor, indices: torch.Tensor, name: str = "indices") -> None:
    """O(1) checks of a CSR's types; its contents are checked by the kernel that reads them."""
    if not isinstance(indptr, torch.Tensor) or indptr.dtype != torch.int64 or indptr.dim() != 1:
        raise ValueError("indptr must be a 1-D int64 tensor")
    if indptr.numel() == 0:
        raise ValueError("indptr must hold at least one entry (num_nodes + 1 in all)")
    if not isinstance(indices, torch.Tensor) or indices.dtype not in INDEX_DTYPES or indices.dim() != 1:
        raise ValueError(f"{name} must be a 1-D int32 or int64 tensor")


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
    return _OPS.neighbor_sample(indptr.contiguous(), indices.contiguous(), seeds, fanouts, replace, weight,
                                _check_seed(seed))


def check_fanouts(fanouts) -> List[int]:
    fanouts = list(fanouts)
    if not fanouts:
        raise ValueError("fanouts is empty: give one fanout per layer")
    for fanout in fanouts:
        if isinstance(fanout, bool) or not isinstance(fanout, int) or (fanout < 1 and fanout != -1):
            raise ValueError(f"fanouts must be positive ints or -1 (all neighbours), got {fanouts}")
    return fanouts


def check_edge_weights(weight: torch.Tensor, num_edges: int) -> torch.Tensor:
    """Sampling weights: one finite, non-negative value per edge, as float64."""
    if weight.dim() != 1 or weight.numel() != num_edges:
        raise ValueError(f"sampling weights must be 1-D with one value per edge ({num_edges})")
    weight = weight.to(torch.float64).contiguous()
    if not bool(torch.isfinite(weight).all()):
        raise ValueError("sampling weights hold NaN or infinite values")
    if bool((weight < 0).any()):
        raise ValueError("sampling weights hold negative values")
    return weight


def alias_table(weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Vose alias table (probability, alias) for O(1) draws proportional to ``weight``."""
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1 or weight.numel() == 0:
        raise ValueError("weight must be a non-empty 1-D tensor")
    weight = weight.to(torch.float64)
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
        raise ValueError("weights must be finite and non-negative")
    if not bool((weight > 0).any()):
        raise ValueError("weights must not all be zero")
    return _OPS.alias_table(weight.contiguous())


def alias_sample(prob: torch.Tensor, alias: torch.Tensor, num_samples: int, *, seed: int = 0) -> torch.Tensor:
    """``num_samples`` draws from an alias table (int64 ids)."""
    return _OPS.alias_sample(prob, alias, _check_count("num_samples", num_samples), _check_seed(seed))


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
    return _OPS.negative_tails(indptr.contiguous(), indices.contiguous(), src.to(torch.int64).contiguous(),
                               _check_count("num_per_source", num_per_source), prob, alias, reject_edges,
                               max_tries, _check_seed(seed))


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    return seed & 0x7FFFFFFFFFFFFFFF


def gather_rows(
    table: torch.Tensor,
    index: torch.Tensor,
    out: torch.Tensor,
    *,
    positions: Optional[torch.Tensor] = None,
    max_blocks: int = 1024,
    align_reads: bool = True,
) -> torch.Tensor:
    """``out[positions[i]] = table[index[i]]`` (``out[i]`` without positions), any dtype.

    On the CPU (all three in host memory) it runs on all threads with software prefetch. With
    ``index`` and ``out`` on a GPU and ``table`` pinned host memory, GPU warps read the rows in
    place over PCIe (zero-copy), in at most ``max_blocks`` thread blocks, reads shifted to
    128-byte boundaries when ``align_reads``. Ids are range-checked here.
    """
    if not isinstance(table, torch.Tensor) or table.dim() != 2:
        raise ValueError("table must be a 2-D tensor")
    check_index_tensor("index", index, table.size(0))
    if positions is not None:
        check_index_tensor("positions", positions, out.size(0))
        positions = positions.to(torch.int64).contiguous()
    _OPS.gather_rows(table, index.contiguous(), positions, out, max_blocks, align_reads)
    return out


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
    _check_topology(indptr, indices)
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
    return _OPS.random_walk(indptr, indices.contiguous(), starts.contiguous(), length, cumulative_weight,
                            float(p), float(q), _check_seed(seed), sound)


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
    return _OPS.walk_pairs(walks, window, bool(shrink_window), keep_prob, _check_seed(seed))


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
    share = _check_count("share_negatives", share_negatives)
    if share < 1:
        raise ValueError("share_negatives must be at least 1")
    return _OPS.sgns_train(vertex, context, pairs, prob, alias, _check_count("negatives", negatives),
                           float(lr[0]), float(lr[1]), share, _check_seed(seed))


def hop_token_sample(indptr: torch.Tensor, indices: torch.Tensor, nodes: torch.Tensor, num_samples: int,
                     fanouts: List[int], *, seed: int = 0) -> torch.Tensor:
    """``[len(nodes), num_samples]`` int64: for each node, up to ``num_samples`` distinct other
    nodes drawn uniformly from its neighbourhood within ``len(fanouts)`` hops, where hop ``h``
    expands every node reached by hop ``h-1`` by at most ``fanouts[h]`` neighbours (-1: all).
    Rows with fewer candidates are padded with -1. A node's row depends only on ``seed`` and its id.
    """
    _check_topology(indptr, indices)
    check_index_tensor("nodes", nodes, indptr.numel() - 1)
    fanouts = check_fanouts(fanouts)
    return _OPS.hop_token_sample(indptr.contiguous(), indices.contiguous(), nodes.to(torch.int64).contiguous(),
                                 _check_count("num_samples", num_samples), fanouts, _check_seed(seed))


def scaled_spmm(indptr: torch.Tensor, indices: torch.Tensor, x: torch.Tensor, *,
                edge_weight: Optional[torch.Tensor] = None, row_scale: Optional[torch.Tensor] = None,
                col_scale: Optional[torch.Tensor] = None, self_loops: bool = False,
                out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``out = diag(row_scale) (A + self_loops * I) diag(col_scale) x`` for the CSR matrix ``A``
    (values ``edge_weight``, ones by default; a missing scale is all ones); float32, on all threads.
    ``x`` and ``out`` may be column blocks of wider tables (rows strided, each row contiguous),
    e.g. of a memory-mapped file. ``x`` may also be a sparse CSR tensor (the output is dense).
    Row pointers and column ids, of the matrix and of a sparse ``x``, are checked by the kernel
    as it reads them, unless the CSR was found sound before; a product that reads them all
    (any but one of width 0) finds the CSR sound for later calls."""
    _check_topology(indptr, indices)
    num_nodes = indptr.numel() - 1
    if x.dim() != 2 or x.size(0) != num_nodes:
        raise ValueError(f"x must be [num_nodes={num_nodes}, width], got shape {tuple(x.shape)}")
    vectors = [None if v is None else v.float().contiguous() for v in (edge_weight, row_scale, col_scale)]
    sound = is_known_sound_csr(indptr, indices)
    matrix = (indptr.contiguous(), indices.contiguous())
    if x.layout == torch.sparse_csr:
        if out is None:
            out = torch.empty(x.shape, dtype=torch.float32)
        _OPS.scaled_spmm_sparse_x(*matrix, *vectors, self_loops, x.crow_indices().to(torch.int64).contiguous(),
                                  x.col_indices().to(torch.int64).contiguous(), x.values().float().contiguous(), out)
    else:
        if x.dtype != torch.float32 or x.stride(1) != 1:
            x = x.float().contiguous()
        if out is None:
            out = torch.empty_like(x)
        _OPS.scaled_spmm(*matrix, *vectors, self_loops, x, out, sound)
    if not sound and x.size(1) > 0:
        remember_sound_csr(indptr, indices)
    return out


def gcn_propagate(indptr: torch.Tensor, indices: torch.Tensor, inv_sqrt_degree: torch.Tensor, x: torch.Tensor,
                  out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``out = D^-1/2 (A + I) D^-1/2 x`` for the CSR adjacency ``A``, given ``inv_sqrt_degree``
    (``1/sqrt(deg + 1)`` per row)."""
    return scaled_spmm(indptr, indices, x, row_scale=inv_sqrt_degree, col_scale=inv_sqrt_degree,
                       self_loops=True, out=out)


def temporal_neighbor_sample(indptr: torch.Tensor, neighbors: torch.Tensor, edge_ids: torch.Tensor,
                             edge_times: torch.Tensor, nodes: torch.Tensor, times: torch.Tensor, k: int, *,
                             event_limit: Optional[torch.Tensor] = None, most_recent: bool = True,
                             seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each query ``(nodes[i], times[i])``, up to ``k`` of the node's events strictly before
    ``times[i]`` (and with an id below ``event_limit[i]`` when given) from a time-sorted CSR: the
    most recent ones, or distinct ones uniformly at random. Returns ``(neighbors, edge_ids,
    times)``, each ``[len(nodes), k]`` in chronological order, padded with -1 (times with 0)."""
    _check_topology(indptr, neighbors, "neighbors")
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
    return _OPS.temporal_neighbor_sample(indptr.contiguous(), neighbors.contiguous(), edge_ids.contiguous(),
                                         edge_times.contiguous(), nodes.to(torch.int64).contiguous(), times,
                                         event_limit, _check_count("k", k), bool(most_recent), _check_seed(seed))


# ------------------------------------------------------------------ attention over gathered rows
# Differentiable; each backward is made of the same kernels (see csrc/cpu/neighbor_attention.cpp).
# On CUDA the same maths runs as gathers and batched products, which the GPU does well.

def _check_attention_operands(table: torch.Tensor, rows: torch.Tensor, per_query: torch.Tensor, name: str) -> None:
    if table.dim() != 2:
        raise ValueError(f"table must be 2-D [rows, width], got shape {tuple(table.shape)}")
    if rows.dim() != 2 or rows.dtype != torch.int64:
        raise ValueError(f"rows must be a [queries, k] int64 tensor, got {rows.dtype} of shape {tuple(rows.shape)}")
    if per_query.dim() != 3 or per_query.size(0) != rows.size(0):
        raise ValueError(f"{name} must be [queries={rows.size(0)}, ., .], got shape {tuple(per_query.shape)}")
    if per_query.dtype != table.dtype:
        raise ValueError(f"{name} must have the table's dtype {table.dtype}, got {per_query.dtype}")
    if rows.numel():
        low, high = (int(bound) for bound in torch.aminmax(rows))
        if high >= table.size(0):
            raise ValueError(f"rows holds row {high}, out of range for a table of {table.size(0)} rows")
        if low < -1:
            raise ValueError(f"rows holds {low}: ids must be rows of the table or -1 (padding)")


def _scatter_outer_add(num_rows: int, rows, coefficients, vectors) -> torch.Tensor:
    out = vectors.new_zeros(num_rows, vectors.size(2))
    _OPS.scatter_outer_add(out, rows, coefficients.contiguous(), vectors.contiguous())
    return out


class _GatherAttention(torch.autograd.Function):
    """``gather_dot`` (``dot=True``, ``per_query`` = vectors ``[Q, H, W]``) or ``gather_weighted_sum``
    (``per_query`` = weights ``[Q, k, H]``). Each one's gradient in ``per_query`` is the other op,
    and in ``table`` a scatter of the same outer products."""

    @staticmethod
    def forward(ctx, table, rows, per_query, dot: bool):
        ctx.dot = dot
        ctx.save_for_backward(table, rows, per_query)
        return (_OPS.gather_dot if dot else _OPS.gather_weighted_sum)(table, rows, per_query)

    @staticmethod
    def backward(ctx, grad):
        table, rows, per_query = ctx.saved_tensors
        grad = grad.contiguous()
        coefficients, vectors = (grad, per_query) if ctx.dot else (per_query, grad)
        grad_table = _scatter_outer_add(table.size(0), rows, coefficients, vectors) if ctx.needs_input_grad[0] else None
        dual = _OPS.gather_weighted_sum if ctx.dot else _OPS.gather_dot
        grad_per_query = dual(table, rows, grad) if ctx.needs_input_grad[2] else None
        return grad_table, None, grad_per_query, None


def _gathered(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``table[rows]`` with zero rows on padding (-1): ``[Q, k, W]``."""
    if table.size(0) == 0:  # every row is padding
        return table.new_zeros(*rows.shape, table.size(1))
    return table[rows.clamp_min(0)] * (rows >= 0).unsqueeze(2).to(table.dtype)


def gather_dot(table: torch.Tensor, rows: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``out[q, j, h] = <table[rows[q, j]], vectors[q, h]>``, ``[Q, k, H]``; 0 where ``rows`` is -1
    (padding). Differentiable in ``table`` and ``vectors``."""
    _check_attention_operands(table, rows, vectors, "vectors")
    if vectors.size(2) != table.size(1):
        raise ValueError(f"vectors must be [queries, heads, {table.size(1)}], got shape {tuple(vectors.shape)}")
    if table.is_cuda:
        return torch.bmm(_gathered(table, rows), vectors.transpose(1, 2))
    return _GatherAttention.apply(table.contiguous(), rows.contiguous(), vectors.contiguous(), True)


def gather_weighted_sum(table: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``out[q, h] = sum_j weights[q, j, h] * table[rows[q, j]]``, ``[Q, H, W]``, skipping padding
    (-1). Differentiable in ``table`` and ``weights``."""
    _check_attention_operands(table, rows, weights, "weights")
    if weights.size(1) != rows.size(1):
        raise ValueError(f"weights must be [queries, k={rows.size(1)}, heads], got shape {tuple(weights.shape)}")
    if table.is_cuda:
        return torch.bmm(weights.transpose(1, 2), _gathered(table, rows))
    return _GatherAttention.apply(table.contiguous(), rows.contiguous(), weights.contiguous(), False)


class _TimeEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dt, frequency, phase):
        ctx.save_for_backward(dt, frequency, phase)
        return _OPS.time_encode(dt, frequency, phase)

    @staticmethod
    def backward(ctx, grad):
        dt, frequency, phase = ctx.saved_tensors
        grad_frequency, grad_phase = _OPS.time_encode_backward(grad.contiguous(), dt, frequency, phase)
        return None, grad_frequency, grad_phase


def time_encode(dt: torch.Tensor, frequency: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """``cos(dt[:, None] * frequency + phase)``: ``[len(dt), len(frequency)]`` in the dtype of the
    parameters, with the angle formed in float64 (time gaps of real streams make angles of
    millions of radians, which float32 cannot place to within 0.1 rad). Differentiable in
    ``frequency`` and ``phase``; ``dt`` is data."""
    if dt.dim() != 1 or not dt.is_floating_point():
        raise ValueError(f"dt must be a 1-D floating tensor, got {dt.dtype} of shape {tuple(dt.shape)}")
    if frequency.dim() != 1 or frequency.shape != phase.shape or frequency.dtype != phase.dtype:
        raise ValueError("frequency and phase must be 1-D tensors of the same length and dtype, got "
                         f"{tuple(frequency.shape)} {frequency.dtype} and {tuple(phase.shape)} {phase.dtype}")
    if frequency.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"frequency and phase must be float32 or float64, got {frequency.dtype}")
    if dt.requires_grad:
        raise ValueError("time_encode is not differentiable in dt")
    if not frequency.device.type == dt.device.type == "cpu":
        angle = dt.to(torch.float64).unsqueeze(1) * frequency.to(torch.float64) + phase.to(torch.float64)
        return torch.cos(angle).to(frequency.dtype)
    return _TimeEncode.apply(dt.contiguous(), frequency, phase)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p: float, seed: int):
        out, keep = _OPS.dropout_forward(x, p, seed)
        ctx.p = p
        ctx.save_for_backward(keep)
        return out

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return _OPS.dropout_backward(grad, keep, ctx.p), None, None


def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True,
            generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``F.dropout`` with the mask drawn on all threads on CPU (ATen's CPU dropout draws it serially
    and is ~10x slower than the multiplication); one byte per element is kept for the
    backward. The mask's seed comes from ``generator`` (torch's default generator when None), so
    ``torch.manual_seed`` and saved RNG states reproduce it. Other devices use ``F.dropout``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not x.is_floating_point():
        if generator is None:
            return torch.nn.functional.dropout(x, p, True)
        keep = torch.empty_like(x).uniform_(generator=generator).ge_(p)
        return x * keep.to(x.dtype) / (1.0 - p)
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return _Dropout.apply(x, p, seed)
