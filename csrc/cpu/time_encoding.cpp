// Harmonic time encoding of dynamic GNNs (TGN): out[i, w] = cos(frequency[w] * dt[i] + phase[w]).
//
// Time gaps of real streams are large (seconds over a month: up to ~3e6) and the highest
// frequencies are ~1, so the angles reach millions of radians. Computed in float32, as a
// Linear(1, d) followed by cos does, the angle itself is off by up to 0.1 rad, and the vectorised
// float cos/sin fall back to their slow large-argument path. Here the angle is formed in double,
// reduced to [-pi, pi] by a two-part 2*pi, and cos/sin are short polynomials there: one pass over
// the [n, d] output, exact to float32 rounding, and a backward pass that accumulates the two
// parameter gradients without materialising sin or the angle gradient.
#include "time_encoding.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "parallel.h"
#include "vector_clones.h"

namespace gnnscale {
namespace {

constexpr double kTwoPi = 6.283185307179586476925;
// 2*pi split so that k * kTwoPiHigh is exact for |k| < 2^29 (kTwoPiHigh has a 24-bit significand).
constexpr double kTwoPiHigh = static_cast<double>(static_cast<float>(kTwoPi));
constexpr double kTwoPiLow = kTwoPi - kTwoPiHigh;
constexpr double kInverseTwoPi = 1.0 / kTwoPi;

// The angle reduced to [-pi, pi].
inline double reduced_angle(double angle) {
  const double turns = std::nearbyint(angle * kInverseTwoPi);
  return (angle - turns * kTwoPiHigh) - turns * kTwoPiLow;
}

// Taylor series on [-pi, pi], truncated after the x^20 (cos) and x^21 (sin) terms: the error is
// below 4e-9, far under float32 resolution.
inline double cos_reduced(double x) {
  const double y = x * x;
  double s = 1.0 / 2432902008176640000.0;  // 1/20!
  s = s * y - 1.0 / 6402373705728000.0;
  s = s * y + 1.0 / 20922789888000.0;
  s = s * y - 1.0 / 87178291200.0;
  s = s * y + 1.0 / 479001600.0;
  s = s * y - 1.0 / 3628800.0;
  s = s * y + 1.0 / 40320.0;
  s = s * y - 1.0 / 720.0;
  s = s * y + 1.0 / 24.0;
  s = s * y - 0.5;
  return s * y + 1.0;
}

inline double sin_reduced(double x) {
  const double y = x * x;
  double s = -1.0 / 51090942171709440000.0;  // -1/21!
  s = s * y + 1.0 / 121645100408832000.0;
  s = s * y - 1.0 / 355687428096000.0;
  s = s * y + 1.0 / 1307674368000.0;
  s = s * y - 1.0 / 6227020800.0;
  s = s * y + 1.0 / 39916800.0;
  s = s * y - 1.0 / 362880.0;
  s = s * y + 1.0 / 5040.0;
  s = s * y - 1.0 / 120.0;
  s = s * y + 1.0 / 6.0;
  return x - x * y * s;
}

template <typename scalar_t>
GNNSCALE_VECTOR_CLONES void encode_rows(const double* dt, const double* frequency, const double* phase,
                                        scalar_t* out, int64_t width, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const double gap = dt[i];
    scalar_t* row = out + i * width;
#pragma omp simd
    for (int64_t w = 0; w < width; ++w) row[w] = static_cast<scalar_t>(cos_reduced(reduced_angle(frequency[w] * gap + phase[w])));
  }
}

// Adds d/d frequency and d/d phase of sum(grad * out) over rows [begin, end) to the accumulators.
template <typename scalar_t>
GNNSCALE_VECTOR_CLONES void accumulate_rows(const scalar_t* grad, const double* dt, const double* frequency,
                                            const double* phase, double* grad_frequency, double* grad_phase,
                                            int64_t width, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const double gap = dt[i];
    const scalar_t* g = grad + i * width;
#pragma omp simd
    for (int64_t w = 0; w < width; ++w) {
      const double slope = -static_cast<double>(g[w]) * sin_reduced(reduced_angle(frequency[w] * gap + phase[w]));
      grad_phase[w] += slope;
      grad_frequency[w] += slope * gap;
    }
  }
}

// The operands, checked and as contiguous float64: the angle is formed in double.
struct DoubleOperands {
  at::Tensor dt, frequency, phase;
};

DoubleOperands double_operands(const at::Tensor& dt, const at::Tensor& frequency, const at::Tensor& phase) {
  TORCH_CHECK_VALUE(dt.dim() == 1 && at::isFloatingType(dt.scalar_type()), "dt must be a 1-D floating tensor");
  TORCH_CHECK_VALUE(frequency.dim() == 1 && phase.dim() == 1 && frequency.numel() == phase.numel(),
                    "frequency and phase must be 1-D with the same length");
  TORCH_CHECK_VALUE(frequency.scalar_type() == phase.scalar_type() &&
                        (frequency.scalar_type() == at::kFloat || frequency.scalar_type() == at::kDouble),
                    "frequency and phase must both be float32 or float64");
  return {dt.to(at::kDouble).contiguous(), frequency.to(at::kDouble).contiguous(), phase.to(at::kDouble).contiguous()};
}

}  // namespace

at::Tensor time_encode_cpu(const at::Tensor& dt, const at::Tensor& frequency, const at::Tensor& phase) {
  const auto operands = double_operands(dt, frequency, phase);
  const int64_t n = dt.numel(), width = frequency.numel();
  auto out = at::empty({n, width}, frequency.options());
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "time_encode", [&] {
    at::parallel_for(0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(width, 1)), [&](int64_t begin, int64_t end) {
      encode_rows<scalar_t>(operands.dt.data_ptr<double>(), operands.frequency.data_ptr<double>(),
                            operands.phase.data_ptr<double>(), out.data_ptr<scalar_t>(), width, begin, end);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> time_encode_backward_cpu(const at::Tensor& grad, const at::Tensor& dt,
                                                            const at::Tensor& frequency, const at::Tensor& phase) {
  const auto operands = double_operands(dt, frequency, phase);
  const int64_t n = dt.numel(), width = frequency.numel();
  TORCH_CHECK_VALUE(grad.dim() == 2 && grad.size(0) == n && grad.size(1) == width &&
                        grad.scalar_type() == frequency.scalar_type(),
                    "grad must be [len(dt), len(frequency)] of the parameters' dtype");
  const auto g = grad.contiguous();
  // Fixed parts with their own accumulators, summed in part order: the result does not depend on
  // the thread count's scheduling.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n / 64 + 1));
  std::vector<double> partial(static_cast<size_t>(parts * 2 * width), 0.0);
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "time_encode_backward", [&] {
    for_each_part(n, parts, [&](int64_t part, int64_t begin, int64_t end) {
      double* sums = partial.data() + part * 2 * width;
      accumulate_rows<scalar_t>(g.data_ptr<scalar_t>(), operands.dt.data_ptr<double>(),
                                operands.frequency.data_ptr<double>(), operands.phase.data_ptr<double>(), sums,
                                sums + width, width, begin, end);
    });
  });
  auto totals = at::zeros({2, width}, at::kDouble);
  double* total = totals.data_ptr<double>();
  for (int64_t part = 0; part < parts; ++part)
    for (int64_t w = 0; w < 2 * width; ++w) total[w] += partial[part * 2 * width + w];
  totals = totals.to(frequency.scalar_type());
  return {totals[0], totals[1]};
}

}  // namespace gnnscale
