#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace gnnscale {

std::tuple<at::Tensor, at::Tensor> dropout_forward_cpu(const at::Tensor& x, double p, int64_t seed);
at::Tensor dropout_backward_cpu(const at::Tensor& grad, const at::Tensor& mask, double p);

}  // namespace gnnscale
