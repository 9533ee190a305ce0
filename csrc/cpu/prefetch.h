// Software prefetch of table rows, for kernels that read rows at random (gathers, sparse products).
#pragma once

#include <algorithm>
#include <cstdint>

namespace gnnscale {

constexpr int64_t kCacheLine = 64;

// Up to the first 4 lines of a row: enough to start the hardware streamer on longer rows.
inline void prefetch_row(const char* row, int64_t row_bytes) {
  const int64_t lines = std::min<int64_t>((row_bytes + kCacheLine - 1) / kCacheLine, 4);
  for (int64_t l = 0; l < lines; ++l) __builtin_prefetch(row + l * kCacheLine, 0, 0);
}

}  // namespace gnnscale
