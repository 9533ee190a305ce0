// Dropout on all threads: out = x * keep / (1 - p) with keep ~ Bernoulli(1 - p), and the keep mask
// saved as one byte per element for the backward (grad * keep / (1 - p)).
//
// ATen's CPU dropout draws its mask with bernoulli_ from one serial generator and keeps it as a
// full float tensor; on the [pairs, 256] activations of a link predictor it costs ~10x the
// multiplication itself. Here each block of kBlock elements draws from its own counter-based
// stream keyed by (seed, block), two 32-bit uniforms per draw, so the mask depends on the seed alone
// and not on the thread count.
#include "dropout.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "rng.h"

namespace gnnscale {
namespace {

constexpr uint64_t kDropoutStream = 0xd0f0;
constexpr int64_t kBlock = 4096;

// keep iff the 32-bit uniform u satisfies u >= p * 2^32, so P(keep) = 1 - p to within 2^-32.
uint32_t drop_threshold(double p) {
  return static_cast<uint32_t>(std::min(std::ldexp(p, 32), 4294967295.0));
}

// dst[i] = src[i] * keep[i] * scale: a multiply rather than a select, so it vectorises.
template <typename scalar_t>
void scale_by_mask(const scalar_t* src, const bool* keep, float scale, scalar_t* dst, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i)
    dst[i] = static_cast<scalar_t>(static_cast<float>(src[i]) * (scale * static_cast<float>(keep[i])));
}

void check_probability(double p) {
  TORCH_CHECK_VALUE(p >= 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> dropout_forward_cpu(const at::Tensor& x, double p, int64_t seed) {
  check_probability(p);
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty_like(input);
  at::Tensor mask = at::empty(input.sizes(), input.options().dtype(at::kBool));
  const int64_t n = input.numel();
  const uint32_t threshold = drop_threshold(p);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "dropout_forward", [&] {
    const scalar_t* src = input.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    bool* keep = mask.data_ptr<bool>();
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    at::parallel_for(0, blocks, 16, [&](int64_t first, int64_t last) {
      for (int64_t b = first; b < last; ++b) {
        Rng rng(static_cast<uint64_t>(seed), kDropoutStream, static_cast<uint64_t>(b));
        const int64_t end = std::min(n, (b + 1) * kBlock);
        for (int64_t i = b * kBlock; i < end; i += 2) {
          const uint64_t r = rng.next();
          keep[i] = static_cast<uint32_t>(r) >= threshold;
          if (i + 1 < end) keep[i + 1] = static_cast<uint32_t>(r >> 32) >= threshold;
        }
        scale_by_mask(src, keep, scale, dst, b * kBlock, end);
      }
    });
  });
  return {out, mask};
}

at::Tensor dropout_backward_cpu(const at::Tensor& grad, const at::Tensor& mask, double p) {
  check_probability(p);
  TORCH_CHECK_VALUE(mask.scalar_type() == at::kBool && mask.sizes() == grad.sizes(),
                    "mask must be a bool tensor shaped like grad");
  const at::Tensor g = grad.contiguous(), keep = mask.contiguous();
  at::Tensor out = at::empty_like(g);
  const int64_t n = g.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "dropout_backward", [&] {
    const scalar_t* src = g.data_ptr<scalar_t>();
    const bool* k = keep.data_ptr<bool>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    at::parallel_for(0, n, kBlock, [&](int64_t begin, int64_t end) { scale_by_mask(src, k, scale, dst, begin, end); });
  });
  return out;
}

}  // namespace gnnscale
