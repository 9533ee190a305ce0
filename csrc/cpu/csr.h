#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace gnnscale {

std::tuple<at::Tensor, at::Tensor, at::Tensor> coo_to_csr_cpu(const at::Tensor& row, const at::Tensor& col,
                                                              int64_t num_nodes, bool drop_self_loops,
                                                              bool drop_duplicates, bool symmetrize);
std::tuple<at::Tensor, at::Tensor, at::Tensor> csr_to_csc_cpu(const at::Tensor& indptr, const at::Tensor& indices,
                                                              int64_t num_cols, bool sound_csr = false);
at::Tensor degree_cpu(const at::Tensor& index, int64_t num_nodes);

}  // namespace gnnscale
