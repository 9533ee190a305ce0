"""Building, transposing and multiplying CSR matrices."""
from typing import Optional, Tuple

import torch

from . import kernels
from .checks import remember_sound_csr, is_known_sound_csr, check_index_tensor, check_count, check_topology


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
    num_nodes = check_count("num_nodes", num_nodes)
    check_index_tensor("row", row, num_nodes)
    check_index_tensor("col", col, num_nodes)
    if row.dtype != col.dtype:
        raise ValueError(f"row and col must share a dtype, got {row.dtype} and {col.dtype}")
    if row.numel() != col.numel():
        raise ValueError(f"row and col differ in length: {row.numel()} vs {col.numel()}")
    if row.device != col.device:
        raise ValueError(f"row and col are on different devices: {row.device} vs {col.device}")
    indptr, indices, perm = kernels.OPS.coo_to_csr(
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
    num_cols = check_count("num_cols", num_cols)
    square = num_cols == indptr.numel() - 1  # the memo is about square CSRs only
    sound = square and is_known_sound_csr(indptr, indices)
    transposed = kernels.OPS.csr_to_csc(indptr.contiguous(), indices.contiguous(), num_cols, sound)
    if square:  # the kernel found (or was told) every row and id sound
        if not sound:
            remember_sound_csr(indptr, indices)
        remember_sound_csr(transposed[0], transposed[1])
    return transposed


def degree(index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Counts how often each id in [0, num_nodes) occurs in ``index`` (int64 result)."""
    num_nodes = check_count("num_nodes", num_nodes)
    check_index_tensor("index", index, num_nodes)
    return kernels.OPS.degree(index.contiguous(), num_nodes)


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
    check_topology(indptr, indices)
    num_nodes = indptr.numel() - 1
    if x.dim() != 2 or x.size(0) != num_nodes:
        raise ValueError(f"x must be [num_nodes={num_nodes}, width], got shape {tuple(x.shape)}")
    vectors = [None if v is None else v.float().contiguous() for v in (edge_weight, row_scale, col_scale)]
    sound = is_known_sound_csr(indptr, indices)
    matrix = (indptr.contiguous(), indices.contiguous())
    if x.layout == torch.sparse_csr:
        if out is None:
            out = torch.empty(x.shape, dtype=torch.float32)
        kernels.OPS.scaled_spmm_sparse_x(*matrix, *vectors, self_loops, x.crow_indices().to(torch.int64).contiguous(),
                                  x.col_indices().to(torch.int64).contiguous(), x.values().float().contiguous(), out)
    else:
        if x.dtype != torch.float32 or x.stride(1) != 1:
            x = x.float().contiguous()
        if out is None:
            out = torch.empty_like(x)
        kernels.OPS.scaled_spmm(*matrix, *vectors, self_loops, x, out, sound)
    if not sound and x.size(1) > 0:
        remember_sound_csr(indptr, indices)
    return out


def gcn_propagate(indptr: torch.Tensor, indices: torch.Tensor, inv_sqrt_degree: torch.Tensor, x: torch.Tensor,
                  out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``out = D^-1/2 (A + I) D^-1/2 x`` for the CSR adjacency ``A``, given ``inv_sqrt_degree``
    (``1/sqrt(deg + 1)`` per row)."""
    return scaled_spmm(indptr, indices, x, row_scale=inv_sqrt_degree, col_scale=inv_sqrt_degree,
                       self_loops=True, out=out)
