// Zero-copy row gather: GPU threads read rows of a pinned host table directly over PCIe and write
// them to GPU memory, out[i] = table[index[i]], with no staging copy on the host.
//
// One warp per row. PCIe reads are most efficient as whole 128-byte-aligned requests, so each
// warp starts at the 128-byte boundary at or below its row and steps through the row in 512-byte
// strides (32 lanes x 16 bytes); lanes whose bytes fall outside the row stay idle. Rows whose
// size or start is not a multiple of 16 bytes fall back to 4-byte or 1-byte words.
// torch's operators one header each: with ATen/ATen.h (every operator's header) nvcc takes 1.7x as long.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>

namespace gnnscale {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;
constexpr int64_t kAlign = 128;

template <typename word_t, typename index_t>
__global__ void gather_kernel(const char* __restrict__ table, int64_t row_bytes, const index_t* __restrict__ index,
                              const int64_t* __restrict__ positions, int64_t count, char* __restrict__ out,
                              bool align_reads) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * kWarpsPerBlock;
  for (int64_t i = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp; i < count; i += warps) {
    const char* row = table + static_cast<int64_t>(index[i]) * row_bytes;
    char* target = out + (positions ? positions[i] : i) * row_bytes;
    const uintptr_t start = reinterpret_cast<uintptr_t>(row);
    const uintptr_t end = start + row_bytes;
    const uintptr_t first = align_reads ? start & ~static_cast<uintptr_t>(kAlign - 1) : start;
    for (uintptr_t chunk = first; chunk < end; chunk += kWarp * sizeof(word_t)) {
      const uintptr_t address = chunk + lane * sizeof(word_t);
      if (address >= start && address < end) {
        const word_t value = *reinterpret_cast<const word_t*>(address);
        *reinterpret_cast<word_t*>(target + (address - start)) = value;
      }
    }
  }
}

template <typename index_t>
void launch(const at::Tensor& table, const at::Tensor& index, const c10::optional<at::Tensor>& positions,
            const at::Tensor& out, int64_t max_blocks, bool align_reads) {
  const int64_t row_bytes = table.size(1) * table.element_size();
  const int64_t count = index.numel();
  const char* base = static_cast<const char*>(table.data_ptr());
  const int64_t* pos = positions.has_value() ? positions->data_ptr<int64_t>() : nullptr;
  const int64_t needed = (count + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const int blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(needed, max_blocks)));
  auto stream = c10::cuda::getCurrentCUDAStream();
  const auto alignment = reinterpret_cast<uintptr_t>(base) | static_cast<uintptr_t>(row_bytes) |
                         reinterpret_cast<uintptr_t>(out.data_ptr());
  char* target = static_cast<char*>(out.data_ptr());
  const index_t* ids = index.data_ptr<index_t>();
  if (alignment % 16 == 0) {
    gather_kernel<uint4, index_t><<<blocks, kWarp * kWarpsPerBlock, 0, stream>>>(base, row_bytes, ids, pos, count,
                                                                                  target, align_reads);
  } else if (alignment % 4 == 0) {
    gather_kernel<uint32_t, index_t><<<blocks, kWarp * kWarpsPerBlock, 0, stream>>>(base, row_bytes, ids, pos,
                                                                                    count, target, align_reads);
  } else {
    gather_kernel<uint8_t, index_t><<<blocks, kWarp * kWarpsPerBlock, 0, stream>>>(base, row_bytes, ids, pos, count,
                                                                                   target, align_reads);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

// table: pinned (registered) host memory or GPU memory; index, positions, out: GPU memory.
void gather_rows_cuda(const at::Tensor& table, const at::Tensor& index, const c10::optional<at::Tensor>& positions,
                      const at::Tensor& out, int64_t max_blocks, bool align_reads) {
  TORCH_CHECK_VALUE(table.dim() == 2 && table.is_contiguous(), "table must be a contiguous 2-D tensor");
  TORCH_CHECK_VALUE(table.is_cuda() || table.is_pinned(), "table must be in GPU memory or pinned host memory");
  TORCH_CHECK_VALUE(index.is_cuda() && index.dim() == 1 && index.is_contiguous() &&
                        (index.scalar_type() == at::kLong || index.scalar_type() == at::kInt),
                    "index must be a contiguous 1-D int32/int64 CUDA tensor");
  TORCH_CHECK_VALUE(out.is_cuda() && out.is_contiguous() && out.dim() == 2 && out.size(1) == table.size(1) &&
                        out.scalar_type() == table.scalar_type(),
                    "out must be a contiguous CUDA tensor with the table's row width and dtype");
  TORCH_CHECK_VALUE(max_blocks >= 1, "max_blocks must be positive");
  if (positions.has_value()) {
    TORCH_CHECK_VALUE(positions->is_cuda() && positions->scalar_type() == at::kLong &&
                          positions->numel() == index.numel(),
                      "positions must be an int64 CUDA tensor with one entry per index");
  } else {
    TORCH_CHECK_VALUE(out.size(0) == index.numel(), "out must have one row per index");
  }
  if (index.numel() == 0) return;
  c10::cuda::CUDAGuard guard(index.device());
  AT_DISPATCH_INDEX_TYPES(index.scalar_type(), "gather_rows_cuda",
                          [&] { launch<index_t>(table, index, positions, out, max_blocks, align_reads); });
}

}  // namespace gnnscale

TORCH_LIBRARY_IMPL(gnnscale, CUDA, m) { m.impl("gather_rows", &gnnscale::gather_rows_cuda); }
