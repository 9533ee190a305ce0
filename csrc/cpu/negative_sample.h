#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace gnnscale {

std::tuple<at::Tensor, at::Tensor> alias_table_cpu(const at::Tensor& weight);
at::Tensor alias_sample_cpu(const at::Tensor& prob, const at::Tensor& alias, int64_t num_samples, int64_t seed);
at::Tensor negative_tails_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& src,
                              int64_t num_per_source, const c10::optional<at::Tensor>& prob,
                              const c10::optional<at::Tensor>& alias, bool reject_edges, int64_t max_tries,
                              int64_t seed);

}  // namespace gnnscale
