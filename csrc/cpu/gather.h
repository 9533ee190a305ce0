#pragma once

#include <ATen/core/Tensor.h>

namespace gnnscale {

#include <c10/util/Optional.h>

// Writes table[index[i]] into out[positions[i]] (out[i] without positions), any dtype; ids must
// already be checked to be in range. max_blocks and align_reads matter to the CUDA kernel only.
void gather_rows_cpu(const at::Tensor& table, const at::Tensor& index, const c10::optional<at::Tensor>& positions,
                     const at::Tensor& out, int64_t max_blocks, bool align_reads);

}  // namespace gnnscale
