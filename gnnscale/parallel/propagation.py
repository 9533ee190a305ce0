"""Sparse aggregation ``Â h`` with a precomputed transpose for the backward pass."""
from __future__ import annotations

import warnings

import torch

from .. import ops


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, propagation: "Propagation") -> torch.Tensor:
        ctx.propagation = propagation
        return propagation.matrix @ h

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.propagation.transpose @ grad.contiguous(), None


class Propagation:
    """``Â h`` for a CSR matrix of shape ``[num_rows, num_cols]``. Torch's own backward of a sparse
    product transposes the matrix at every call; this one keeps the transpose built once."""

    def __init__(self, indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, num_cols: int):
        num_rows = indptr.numel() - 1
        ops.check_csr(indptr, indices, num_cols)
        if values.numel() != indices.numel():
            raise ValueError(f"values hold {values.numel()} entries for {indices.numel()} indices")
        self.shape = (num_rows, num_cols)
        t_indptr, t_indices, perm = ops.csr_to_csc(indptr, indices, num_cols)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            # Checked above, so torch's O(nnz) invariant check would be redundant.
            self.matrix = torch.sparse_csr_tensor(indptr, indices, values, size=self.shape, check_invariants=False)
            self.transpose = torch.sparse_csr_tensor(t_indptr, t_indices, values[perm], size=(num_cols, num_rows),
                                                     check_invariants=False)

    @property
    def nnz(self) -> int:
        return self.matrix.values().numel()

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        if h.size(0) != self.shape[1]:
            raise ValueError(f"aggregation expects {self.shape[1]} input rows, got {h.size(0)}")
        return _SparseMatmul.apply(h, self)

    def to(self, device) -> "Propagation":
        moved = object.__new__(Propagation)
        moved.shape, moved.matrix, moved.transpose = self.shape, self.matrix.to(device), self.transpose.to(device)
        return moved
