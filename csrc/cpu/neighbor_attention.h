#pragma once

#include <ATen/core/Tensor.h>

namespace gnnscale {

at::Tensor gather_dot_cpu(const at::Tensor& table, const at::Tensor& rows, const at::Tensor& vectors);
at::Tensor gather_weighted_sum_cpu(const at::Tensor& table, const at::Tensor& rows, const at::Tensor& weights);
void scatter_outer_add_cpu(at::Tensor& out, const at::Tensor& rows, const at::Tensor& coefficients,
                           const at::Tensor& vectors);

}  // namespace gnnscale
