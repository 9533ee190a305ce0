// Attention over gathered neighbour rows, without materialising the gathered rows.
//
// A query q attends to k rows of a table (rows[q, j], -1 on padding) with H heads. The three
// kernels below are closed under differentiation, so forward and backward of attention logits and
// of the attention-weighted sum need nothing else:
//
//   gather_dot           out[q, j, h] = <table[rows[q, j]], vectors[q, h]>                  [Q, k, H]
//   gather_weighted_sum  out[q, h]    = sum_j weights[q, j, h] * table[rows[q, j]]           [Q, H, W]
//   scatter_outer_add    out[rows[q, j]] += sum_h coefficients[q, j, h] * vectors[q, h]      [R, W]
//
// d gather_dot / d vectors = gather_weighted_sum(table, rows, grad), d / d table = scatter_outer_add;
// d gather_weighted_sum / d weights = gather_dot(table, rows, grad), d / d table = scatter_outer_add.
// With k and H small (10 neighbours, 2 heads in TGN) a batched matrix product or broadcast
// products spend their time on tiny matrices or [Q, k, W] temporaries; these loops read each
// gathered row once.
#include "neighbor_attention.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

#include "checks.h"
#include "parallel.h"
#include "vector_clones.h"

namespace gnnscale {
namespace {

// Whether r names a row of the table: -1 is padding, anything else outside the table sets `bad`
// (and is skipped), to be named after the parallel loop.
struct RowCheck {
  int64_t num_rows;
  bool is_row(int64_t r, bool& bad) const {
    const bool known = in_range(r, num_rows);
    bad |= !known && r != -1;
    return known;
  }
};

// Raises ValueError naming the first of rows[0, n) that is neither a row of the table nor -1.
C10_NOINLINE void raise_first_bad_row(const int64_t* rows, int64_t n, int64_t num_rows) {
  for (int64_t i = 0; i < n; ++i)
    TORCH_CHECK_VALUE(rows[i] == -1 || in_range(rows[i], num_rows), "rows hold ", rows[i], " at position ", i,
                      ", out of range for ", num_rows, " rows of the table");
}

// out[q, j, h] = <table[rows[q, j]], vec[q, h]> for queries [begin, end).
template <typename scalar_t>
GNNSCALE_VECTOR_CLONES bool gather_dot_range(const scalar_t* table, const int64_t* rows, const scalar_t* vec,
                                             scalar_t* out, int64_t k, int64_t heads, int64_t width,
                                             int64_t begin, int64_t end, const RowCheck& check) {
  bool bad = false;
  for (int64_t q = begin; q < end; ++q) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = rows[q * k + j];
      if (!check.is_row(r, bad)) continue;
      const scalar_t* x = table + r * width;
      for (int64_t h = 0; h < heads; ++h) {
        const scalar_t* v = vec + (q * heads + h) * width;
        scalar_t sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t w = 0; w < width; ++w) sum += x[w] * v[w];
        out[(q * k + j) * heads + h] = sum;
      }
    }
  }
  return bad;
}

// out[q, h] = sum_j weights[q, j, h] * table[rows[q, j]] for queries [begin, end).
template <typename scalar_t>
GNNSCALE_VECTOR_CLONES bool gather_weighted_sum_range(const scalar_t* table, const int64_t* rows,
                                                      const scalar_t* weights, scalar_t* out, int64_t k,
                                                      int64_t heads, int64_t width, int64_t begin, int64_t end,
                                                      const RowCheck& check) {
  bool bad = false;
  for (int64_t q = begin; q < end; ++q) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = rows[q * k + j];
      if (!check.is_row(r, bad)) continue;
      const scalar_t* x = table + r * width;
      for (int64_t h = 0; h < heads; ++h) {
        const scalar_t a = weights[(q * k + j) * heads + h];
        if (a == 0) continue;
        scalar_t* __restrict__ y = out + (q * heads + h) * width;
#pragma omp simd
        for (int64_t w = 0; w < width; ++w) y[w] += a * x[w];
      }
    }
  }
  return bad;
}

// out[rows[q, j], first:last] += sum_h coeff[q, j, h] * vec[q, h, first:last] over all pairs.
template <typename scalar_t>
GNNSCALE_VECTOR_CLONES bool scatter_outer_add_columns(scalar_t* out, const int64_t* rows, const scalar_t* coeff,
                                                      const scalar_t* vec, int64_t queries, int64_t k,
                                                      int64_t heads, int64_t width, int64_t first, int64_t last,
                                                      const RowCheck& check) {
  bool bad = false;
  for (int64_t q = 0; q < queries; ++q) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = rows[q * k + j];
      if (!check.is_row(r, bad)) continue;
      scalar_t* __restrict__ y = out + r * width;
      for (int64_t h = 0; h < heads; ++h) {
        const scalar_t c = coeff[(q * k + j) * heads + h];
        if (c == 0) continue;
        const scalar_t* __restrict__ v = vec + (q * heads + h) * width;
#pragma omp simd
        for (int64_t w = first; w < last; ++w) y[w] += c * v[w];
      }
    }
  }
  return bad;
}

void check_operands(const at::Tensor& table, const at::Tensor& rows, const at::Tensor& per_query,
                    const char* per_query_name, int64_t expected_last) {
  TORCH_CHECK_VALUE(table.dim() == 2 && table.is_contiguous(), "table must be a contiguous 2-D tensor");
  TORCH_CHECK_VALUE(table.is_floating_point(), "table must be floating point, got ", table.scalar_type());
  TORCH_CHECK_VALUE(rows.dim() == 2 && rows.scalar_type() == at::kLong && rows.is_contiguous(),
                    "rows must be a contiguous [queries, k] int64 tensor");
  TORCH_CHECK_VALUE(per_query.dim() == 3 && per_query.is_contiguous() &&
                        per_query.scalar_type() == table.scalar_type(),
                    per_query_name, " must be a contiguous 3-D tensor of the table's dtype");
  TORCH_CHECK_VALUE(per_query.size(0) == rows.size(0), per_query_name, " has ", per_query.size(0),
                    " queries, rows has ", rows.size(0));
  TORCH_CHECK_VALUE(per_query.size(2) == expected_last, per_query_name, " must end in ", expected_last,
                    ", got ", per_query.size(2));
}

}  // namespace

at::Tensor gather_dot_cpu(const at::Tensor& table, const at::Tensor& rows, const at::Tensor& vectors) {
  check_operands(table, rows, vectors, "vectors", table.size(1));
  const int64_t queries = rows.size(0), k = rows.size(1), heads = vectors.size(1), width = table.size(1);
  auto out = at::zeros({queries, k, heads}, table.options());
  const RowCheck check{table.size(0)};
  std::atomic<bool> bad_rows{false};
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "gather_dot", [&] {
    at::parallel_for(0, queries, 16, [&](int64_t begin, int64_t end) {
      if (gather_dot_range(table.data_ptr<scalar_t>(), rows.data_ptr<int64_t>(), vectors.data_ptr<scalar_t>(),
                           out.data_ptr<scalar_t>(), k, heads, width, begin, end, check))
        bad_rows = true;
    });
  });
  if (bad_rows) raise_first_bad_row(rows.data_ptr<int64_t>(), rows.numel(), table.size(0));
  return out;
}

at::Tensor gather_weighted_sum_cpu(const at::Tensor& table, const at::Tensor& rows, const at::Tensor& weights) {
  check_operands(table, rows, weights, "weights", weights.size(2));
  TORCH_CHECK_VALUE(weights.size(1) == rows.size(1), "weights must be [queries, k, heads] with k = ", rows.size(1));
  const int64_t queries = rows.size(0), k = rows.size(1), heads = weights.size(2), width = table.size(1);
  auto out = at::zeros({queries, heads, width}, table.options());
  const RowCheck check{table.size(0)};
  std::atomic<bool> bad_rows{false};
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "gather_weighted_sum", [&] {
    at::parallel_for(0, queries, 16, [&](int64_t begin, int64_t end) {
      if (gather_weighted_sum_range(table.data_ptr<scalar_t>(), rows.data_ptr<int64_t>(),
                                    weights.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), k, heads, width, begin,
                                    end, check))
        bad_rows = true;
    });
  });
  if (bad_rows) raise_first_bad_row(rows.data_ptr<int64_t>(), rows.numel(), table.size(0));
  return out;
}

void scatter_outer_add_cpu(at::Tensor& out, const at::Tensor& rows, const at::Tensor& coefficients,
                           const at::Tensor& vectors) {
  check_operands(out, rows, vectors, "vectors", out.size(1));
  TORCH_CHECK_VALUE(coefficients.sizes() == at::IntArrayRef({rows.size(0), rows.size(1), vectors.size(1)}) &&
                        coefficients.is_contiguous() && coefficients.scalar_type() == out.scalar_type(),
                    "coefficients must be a contiguous [queries, k, heads] tensor of the output's dtype");
  const int64_t queries = rows.size(0), k = rows.size(1), heads = vectors.size(1), width = out.size(1);
  // Several (q, j) may name the same row, so threads split the columns, not the queries: every
  // thread walks all pairs and owns a disjoint column range, which needs no atomics.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), width / 16));
  const RowCheck check{out.size(0)};
  std::atomic<bool> bad_rows{false};
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "scatter_outer_add", [&] {
    for_each_part(width, parts, [&](int64_t, int64_t first, int64_t last) {
      if (scatter_outer_add_columns(out.data_ptr<scalar_t>(), rows.data_ptr<int64_t>(),
                                    coefficients.data_ptr<scalar_t>(), vectors.data_ptr<scalar_t>(), queries, k, heads,
                                    width, first, last, check))
        bad_rows = true;
    });
  });
  if (bad_rows) raise_first_bad_row(rows.data_ptr<int64_t>(), rows.numel(), out.size(0));
}

}  // namespace gnnscale
