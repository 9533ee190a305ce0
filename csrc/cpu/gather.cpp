// Row gather from a host table: out[i] = table[index[i]], on all CPU threads.
//
// A gather of random rows is bound by memory latency, not bandwidth: each row is a cache (or TLB)
// miss. Each thread walks a contiguous slice of the index and prefetches the rows a few steps
// ahead, so many misses are in flight at once; rows are copied as raw bytes, whatever the dtype.
#include "gather.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstring>

#include "checks.h"
#include "prefetch.h"

namespace gnnscale {
namespace {

constexpr int64_t kPrefetchDistance = 2;

// Ids and positions are checked as they are read (prefetches never fault, so they use them
// unchecked); a bad one is skipped, and named after the parallel loop. Without positions, row i
// goes to out[i], which the operator made sure exists: only the ids need a check.
template <bool kPositions, typename index_t>
void gather_rows(const char* table, int64_t num_rows, int64_t row_bytes, const index_t* index,
                 const int64_t* positions, int64_t count, char* out, int64_t out_rows) {
  // Small per-row work: a grain of a few hundred rows keeps scheduling overhead negligible.
  const int64_t grain = std::max<int64_t>(64, 262144 / std::max<int64_t>(row_bytes, 1));
  std::atomic<bool> bad_ids{false};
  at::parallel_for(0, count, grain, [&](int64_t begin, int64_t end) {
    bool bad = false;
    for (int64_t i = begin; i < std::min(end, begin + kPrefetchDistance); ++i)
      prefetch_row(table + static_cast<int64_t>(index[i]) * row_bytes, row_bytes);
    for (int64_t i = begin; i < end; ++i) {
      if (i + kPrefetchDistance < end)
        prefetch_row(table + static_cast<int64_t>(index[i + kPrefetchDistance]) * row_bytes, row_bytes);
      const int64_t row = static_cast<int64_t>(index[i]);
      const int64_t target = kPositions ? positions[i] : i;
      if (C10_LIKELY(in_range(row, num_rows) && (!kPositions || in_range(target, out_rows))))
        std::memcpy(out + target * row_bytes, table + row * row_bytes, row_bytes);
      else
        bad = true;
    }
    if (bad) bad_ids = true;
  });
  if (bad_ids) {
    raise_first_bad_id(index, count, num_rows, "index holds", "rows");
    if (kPositions) raise_first_bad_id(positions, count, out_rows, "positions hold", "rows of out");
  }
}

}  // namespace

void gather_rows_cpu(const at::Tensor& table, const at::Tensor& index, const c10::optional<at::Tensor>& positions,
                     const at::Tensor& out, int64_t /*max_blocks*/, bool /*align_reads*/) {
  TORCH_CHECK_VALUE(table.dim() == 2 && table.is_contiguous(), "table must be a contiguous 2-D tensor");
  TORCH_CHECK_VALUE(index.dim() == 1 && (index.scalar_type() == at::kLong || index.scalar_type() == at::kInt) &&
                        index.is_contiguous(),
                    "index must be a contiguous 1-D int32/int64 tensor");
  TORCH_CHECK_VALUE(out.dim() == 2 && out.is_contiguous() && out.size(1) == table.size(1) &&
                        out.scalar_type() == table.scalar_type(),
                    "out must be a contiguous 2-D tensor with the table's row width and dtype");
  TORCH_CHECK_VALUE(table.device().is_cpu() && out.device().is_cpu() && index.device().is_cpu(),
                    "the CPU gather needs table, index and out in host memory");
  if (positions.has_value()) {
    TORCH_CHECK_VALUE(positions->scalar_type() == at::kLong && positions->numel() == index.numel() &&
                          positions->is_contiguous(),
                      "positions must be a contiguous int64 tensor with one entry per index");
  } else {
    TORCH_CHECK_VALUE(out.size(0) == index.numel(), "out must have one row per index");
  }
  const int64_t row_bytes = table.size(1) * table.element_size();
  if (index.numel() == 0 || row_bytes == 0) return;
  AT_DISPATCH_INDEX_TYPES(index.scalar_type(), "gather_rows", [&] {
    const char* table_bytes = static_cast<const char*>(table.data_ptr());
    char* out_bytes = static_cast<char*>(out.data_ptr());
    if (positions.has_value()) {
      gather_rows<true>(table_bytes, table.size(0), row_bytes, index.data_ptr<index_t>(),
                        positions->data_ptr<int64_t>(), index.numel(), out_bytes, out.size(0));
    } else {
      gather_rows<false>(table_bytes, table.size(0), row_bytes, index.data_ptr<index_t>(), nullptr, index.numel(),
                         out_bytes, out.size(0));
    }
  });
}

}  // namespace gnnscale
