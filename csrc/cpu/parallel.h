// Helpers shared by the CPU kernels: deterministic work splits and edge-balanced row ranges.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace gnnscale {

// Start of part p when [0, n) is cut into `parts` near-equal contiguous ranges. The split depends
// only on n and parts, so results never depend on which thread ran which part.
inline int64_t part_begin(int64_t n, int64_t parts, int64_t p) {
  return (n / parts) * p + std::min(p, n % parts);
}

// Calls fn(part, begin, end) for `parts` contiguous ranges of [0, n), in parallel.
template <typename Fn>
void for_each_part(int64_t n, int64_t parts, const Fn& fn) {
  at::parallel_for(0, parts, 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) fn(p, part_begin(n, parts, p), part_begin(n, parts, p + 1));
  });
}

// Calls fn(row_begin, row_end) over row ranges holding about equal numbers of edges, so that a
// few high-degree rows (power-law graphs) do not leave one thread doing all the work.
template <typename Fn>
void for_each_row_range_balanced(const int64_t* indptr, int64_t num_rows, const Fn& fn) {
  const int64_t num_edges = indptr[num_rows];
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(num_rows, 8 * at::get_num_threads()));
  at::parallel_for(0, parts, 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      auto row_at = [&](int64_t q) {
        if (q == parts) return num_rows;
        const int64_t edge = part_begin(num_edges, parts, q);
        return static_cast<int64_t>(std::lower_bound(indptr, indptr + num_rows + 1, edge) - indptr);
      };
      const int64_t begin = row_at(p), end = row_at(p + 1);
      if (begin < end) fn(begin, end);
    }
  });
}

}  // namespace gnnscale
