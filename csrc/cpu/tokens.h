#pragma once

#include <ATen/core/Tensor.h>

namespace gnnscale {

at::Tensor hop_token_sample_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& nodes,
                                int64_t num_samples, at::IntArrayRef fanouts, int64_t seed);
void gcn_propagate_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& inv_sqrt_degree,
                       const at::Tensor& x, at::Tensor& out);

}  // namespace gnnscale
