#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace gnnscale {

std::tuple<at::Tensor, at::Tensor, at::Tensor> temporal_neighbor_sample_cpu(
    const at::Tensor& indptr, const at::Tensor& neighbors, const at::Tensor& edge_ids, const at::Tensor& edge_times,
    const at::Tensor& nodes, const at::Tensor& times, const std::optional<at::Tensor>& event_limit, int64_t k,
    bool most_recent, int64_t seed);

}  // namespace gnnscale
