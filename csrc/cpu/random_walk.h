#pragma once

#include <ATen/core/Tensor.h>

namespace gnnscale {

at::Tensor random_walk_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& starts,
                           int64_t length, const c10::optional<at::Tensor>& cumulative_weight, double p, double q,
                           int64_t seed, bool sound_csr);

}  // namespace gnnscale
