#pragma once

#include <ATen/core/Tensor.h>

namespace gnnscale {

at::Tensor walk_pairs_cpu(const at::Tensor& walks, int64_t window, bool shrink_window,
                          const c10::optional<at::Tensor>& keep_prob, int64_t seed);
double sgns_train_cpu(at::Tensor& vertex, at::Tensor& context, const at::Tensor& pairs, const at::Tensor& neg_prob,
                      const at::Tensor& neg_alias, int64_t negatives, double lr_start, double lr_end,
                      int64_t share_negatives, int64_t seed);

}  // namespace gnnscale
