"""Row gathers: CPU and zero-copy GPU gathers, and differentiable attention over gathered rows."""
from typing import Optional

import torch

from . import kernels
from .checks import check_index_tensor


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
    kernels.OPS.gather_rows(table, index.contiguous(), positions, out, max_blocks, align_reads)
    return out


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
    kernels.OPS.scatter_outer_add(out, rows, coefficients.contiguous(), vectors.contiguous())
    return out


class _GatherAttention(torch.autograd.Function):
    """``gather_dot`` (``dot=True``, ``per_query`` = vectors ``[Q, H, W]``) or ``gather_weighted_sum``
    (``per_query`` = weights ``[Q, k, H]``). Each one's gradient in ``per_query`` is the other op,
    and in ``table`` a scatter of the same outer products."""

    @staticmethod
    def forward(ctx, table, rows, per_query, dot: bool):
        ctx.dot = dot
        ctx.save_for_backward(table, rows, per_query)
        return (kernels.OPS.gather_dot if dot else kernels.OPS.gather_weighted_sum)(table, rows, per_query)

    @staticmethod
    def backward(ctx, grad):
        table, rows, per_query = ctx.saved_tensors
        grad = grad.contiguous()
        coefficients, vectors = (grad, per_query) if ctx.dot else (per_query, grad)
        grad_table = _scatter_outer_add(table.size(0), rows, coefficients, vectors) if ctx.needs_input_grad[0] else None
        dual = kernels.OPS.gather_weighted_sum if ctx.dot else kernels.OPS.gather_dot
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
