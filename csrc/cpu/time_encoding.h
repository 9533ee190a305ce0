#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace gnnscale {

at::Tensor time_encode_cpu(const at::Tensor& dt, const at::Tensor& frequency, const at::Tensor& phase);
std::tuple<at::Tensor, at::Tensor> time_encode_backward_cpu(const at::Tensor& grad, const at::Tensor& dt,
                                                            const at::Tensor& frequency, const at::Tensor& phase);

}  // namespace gnnscale
