#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace gnnscale {

// Returns {node, row, col, slot, num_sampled_nodes, num_sampled_edges}; see neighbor_sample.cpp.
std::vector<at::Tensor> neighbor_sample_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& seeds,
                                            at::IntArrayRef fanouts, bool replace,
                                            const c10::optional<at::Tensor>& weight, int64_t seed);

// One hop's draws for the nodes at the given frontier positions of a multi-hop sample, each from
// the stream neighbor_sample gives that position: {count per node, CSC slots, source ids}. A
// sample split over machines draws here what one machine's kernel would draw.
std::vector<at::Tensor> neighbor_draw_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& rows,
                                          const at::Tensor& positions, int64_t fanout, int64_t hop, bool replace,
                                          const c10::optional<at::Tensor>& weight, int64_t seed);

}  // namespace gnnscale
