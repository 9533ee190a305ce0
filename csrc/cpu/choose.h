// Uniform choice of distinct offsets, shared by the neighbour and token samplers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "rng.h"

namespace gnnscale {

// Appends k distinct values of [0, n) (0 <= k <= n) to `out` in ascending order, every k-subset
// equally likely (Floyd's algorithm). Small k scans what it chose so far; larger k uses a set.
inline void choose_distinct(int64_t n, int64_t k, Rng& rng, std::vector<int64_t>& out) {
  constexpr int64_t kLinearScanLimit = 64;
  const size_t first = out.size();
  if (k <= kLinearScanLimit) {
    for (int64_t j = n - k; j < n; ++j) {
      const int64_t t = static_cast<int64_t>(rng.below(j + 1));
      const bool seen = std::find(out.begin() + first, out.end(), t) != out.end();
      out.push_back(seen ? j : t);
    }
  } else {
    std::unordered_set<int64_t> chosen;
    for (int64_t j = n - k; j < n; ++j) {
      const int64_t t = static_cast<int64_t>(rng.below(j + 1));
      out.push_back(chosen.insert(t).second ? t : (chosen.insert(j), j));
    }
  }
  std::sort(out.begin() + first, out.end());
}

}  // namespace gnnscale
