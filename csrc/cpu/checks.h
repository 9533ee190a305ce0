// Argument checks shared by the CPU kernels, run once at the top of each operator.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace gnnscale {

// A contiguous 1-D int32 or int64 id tensor.
inline void check_index_tensor(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 1, name, " must be 1-D, got ", t.dim(), " dimensions");
  TORCH_CHECK_VALUE(t.scalar_type() == at::kInt || t.scalar_type() == at::kLong, name,
                    " must be int32 or int64, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

// A CSR row pointer: contiguous 1-D int64 with at least one entry.
inline void check_indptr(const at::Tensor& indptr) {
  TORCH_CHECK_VALUE(indptr.dim() == 1 && indptr.scalar_type() == at::kLong && indptr.is_contiguous() &&
                        indptr.numel() >= 1,
                    "indptr must be a contiguous 1-D int64 tensor with at least one entry");
}

}  // namespace gnnscale
