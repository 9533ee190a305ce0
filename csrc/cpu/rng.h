// Counter-based random numbers: every sampling decision draws from a stream keyed by
// (seed, purpose, item), so results depend on the seed alone, never on thread scheduling.
// Shared by the CPU and CUDA kernels, so both draw identical samples for the same seed.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace gnnscale {

GNNSCALE_HOST_DEVICE inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

class Rng {
 public:
  GNNSCALE_HOST_DEVICE Rng(uint64_t seed, uint64_t stream, uint64_t item)
      : state_(splitmix64(splitmix64(seed ^ splitmix64(stream)) ^ item)) {}

  GNNSCALE_HOST_DEVICE uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform integer in [0, bound), bound > 0 (Lemire's multiply-shift, bias below 2^-32 for
  // bounds under 2^32, which is far below what any sampling test can see).
  GNNSCALE_HOST_DEVICE uint64_t below(uint64_t bound) {
#ifdef __CUDA_ARCH__
    return __umul64hi(next(), bound);
#else
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
#endif
  }

  // Uniform double in [0, 1).
  GNNSCALE_HOST_DEVICE double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace gnnscale
