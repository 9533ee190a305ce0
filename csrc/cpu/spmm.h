#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace gnnscale {

void scaled_spmm_cpu(const at::Tensor& indptr, const at::Tensor& indices, const std::optional<at::Tensor>& edge_weight,
                     const std::optional<at::Tensor>& row_scale, const std::optional<at::Tensor>& col_scale,
                     bool self_loops, const at::Tensor& x, at::Tensor& out, bool sound_csr);
void scaled_spmm_sparse_x_cpu(const at::Tensor& indptr, const at::Tensor& indices,
                              const std::optional<at::Tensor>& edge_weight, const std::optional<at::Tensor>& row_scale,
                              const std::optional<at::Tensor>& col_scale, bool self_loops, const at::Tensor& x_indptr,
                              const at::Tensor& x_indices, const at::Tensor& x_values, at::Tensor& out);

}  // namespace gnnscale
