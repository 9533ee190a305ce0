#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace gnnscale {

// Returns {node, row, col, slot, num_sampled_nodes, num_sampled_edges}; see neighbor_sample.cpp.
std::vector<at::Tensor> neighbor_sample_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& seeds,
                                            at::IntArrayRef fanouts, bool replace,
                                            const c10::optional<at::Tensor>& weight, int64_t seed);

}  // namespace gnnscale
