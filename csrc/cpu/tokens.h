#pragma once

#include <ATen/core/Tensor.h>

namespace gnnscale {

at::Tensor hop_token_sample_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& nodes,
                                int64_t num_samples, at::IntArrayRef fanouts, int64_t seed);

}  // namespace gnnscale
