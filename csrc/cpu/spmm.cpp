// scaled_spmm: the sparse-dense product of a CSR matrix with a float32 table, with the diagonal
// scalings that graph propagation rules use applied on the fly,
//
//   out = diag(row_scale) (A_w + self_loops * I) diag(col_scale) x,
//
// so GCN's D^-1/2 (A + I) D^-1/2 x (row = col = 1/sqrt(deg + 1)) and the random-walk matrix
// D^-1 A x (row = 1/weighted degree) need no normalised copy of A.
//
// The table is processed in column tiles of kTile floats (four cache lines), after a copy into
// tile-major order, [tiles][n][kTile]. Read in place, a column slice of a row-major table whose row
// stride is a power of two maps onto a few cache sets and thrashes; packed, each neighbour read is
// one contiguous 256-byte block, prefetched a few edges ahead, and the tile's accumulator lives in
// registers. Tiles narrower than 64 floats re-read the index array too often; wider ones spill.
// Once a tile slice outgrows kTiledSliceBytes (n > 32k rows) its reads come from memory anyway,
// and whole rows, read in place, stream better (1.6x torch's product at 1M nodes, against 0.6x
// for tiles). Rows are split across threads by edge count so hubs do not serialise a thread.
//
// Every id of the matrix is read in each tile. Over a CSR not known to be sound, each is checked
// as it is read, by a compare and a jump to a cold path that skips the edge (a flag set there is
// raised after the product), and the caller may take the CSR as sound afterwards; over a CSR known
// sound, the inner loop trusts its ids.
#include "spmm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "checks.h"
#include "parallel.h"
#include "prefetch.h"
#include "vector_clones.h"

namespace gnnscale {
namespace {

constexpr int64_t kTile = 64;
constexpr int64_t kPrefetchDistance = 8;
// Above this a tile slice ([n][kTile] floats) no longer stays in cache.
constexpr int64_t kTiledSliceBytes = 8 << 20;

template <typename Index>
struct Operands {
  const int64_t* indptr;
  const Index* indices;
  int64_t num_rows;          // of the square matrix, so of x
  const float* edge_weight;  // nullptr: all ones
  const float* row_scale;    // nullptr: all ones
  const float* col_scale;    // nullptr: all ones
  bool self_loops;
  float* out;
  int64_t out_stride;
};

// The coefficient of edge e = (i -> j) before the row scale.
template <typename Index>
inline float edge_coefficient(const Operands<Index>& op, int64_t e, int64_t j) {
  const float w = op.edge_weight ? op.edge_weight[e] : 1.0f;
  return op.col_scale ? w * op.col_scale[j] : w;
}

// The column of edge e, unchecked, after a prefetch of the x row read kPrefetchDistance edges
// later (neighbour rows are random reads; the lookahead crosses row ends). A prefetch never
// faults, so the id it uses needs no check. The prefetch must sit in a function whose result is
// used: GCC takes a void function that only prefetches for one without effects and drops the call.
template <typename Index>
inline int64_t next_column(const Operands<Index>& op, int64_t e, const float* x, int64_t stride, int64_t row_bytes,
                           int64_t last_edge) {
  if (e + kPrefetchDistance < last_edge)
    prefetch_row(reinterpret_cast<const char*>(x + static_cast<int64_t>(op.indices[e + kPrefetchDistance]) * stride),
                 row_bytes);
  return static_cast<int64_t>(op.indices[e]);
}

inline float self_coefficient(const float* col_scale, bool self_loops, int64_t i) {
  return self_loops ? (col_scale ? col_scale[i] : 1.0f) : 0.0f;
}

// Rows [begin, end) of one packed tile ([n][kTile], zero-padded) into output columns
// [col, col + width); returns whether an edge named no row of x (and was skipped). The
// accumulator is kTile / 8 explicit 8-float vectors so it stays in registers (AVX2) or register
// pairs (SSE2).
typedef float Floats8 __attribute__((vector_size(32)));
typedef float UnalignedFloats8 __attribute__((vector_size(32), aligned(4)));
constexpr int64_t kVectors = kTile / 8;

template <bool kCheckIds, typename Index>
GNNSCALE_VECTOR_CLONES bool product_tile(const Operands<Index>& op, const float* tile, int64_t col, int64_t width,
                                         int64_t begin, int64_t end) {
  const int64_t last_edge = op.indptr[end];
  bool bad = false;
  for (int64_t i = begin; i < end; ++i) {
    const float self = self_coefficient(op.col_scale, op.self_loops, i);
    const auto* xi = reinterpret_cast<const UnalignedFloats8*>(tile + i * kTile);
    Floats8 acc[kVectors];
    for (int64_t v = 0; v < kVectors; ++v) acc[v] = self * xi[v];
    for (int64_t e = op.indptr[i]; e < op.indptr[i + 1]; ++e) {
      const int64_t j = next_column(op, e, tile, kTile, kTile * sizeof(float), last_edge);
      if (kCheckIds && C10_UNLIKELY(!in_range(j, op.num_rows))) {
        bad = true;
        continue;
      }
      const float w = edge_coefficient(op, e, j);
      const auto* xj = reinterpret_cast<const UnalignedFloats8*>(tile + j * kTile);
      for (int64_t v = 0; v < kVectors; ++v) acc[v] += w * xj[v];
    }
    const float r = op.row_scale ? op.row_scale[i] : 1.0f;
    float* oi = op.out + i * op.out_stride + col;
    if (width == kTile) {
      for (int64_t v = 0; v < kVectors; ++v) reinterpret_cast<UnalignedFloats8*>(oi)[v] = r * acc[v];
    } else {
      float row[kTile];
      for (int64_t v = 0; v < kVectors; ++v) reinterpret_cast<UnalignedFloats8*>(row)[v] = r * acc[v];
      std::copy_n(row, width, oi);
    }
  }
  return bad;
}

// Rows [begin, end) over whole rows of x (row stride x_stride), for tables too large to tile;
// returns whether an edge named no row of x (and was skipped).
template <bool kCheckIds, typename Index>
GNNSCALE_VECTOR_CLONES bool product_rows(const Operands<Index>& op, const float* x, int64_t x_stride, int64_t width,
                                         int64_t begin, int64_t end) {
  const int64_t last_edge = op.indptr[end];
  std::vector<float> acc(width);
  bool bad = false;
  for (int64_t i = begin; i < end; ++i) {
    const float self = self_coefficient(op.col_scale, op.self_loops, i);
    const float* xi = x + i * x_stride;
    for (int64_t f = 0; f < width; ++f) acc[f] = self * xi[f];
    for (int64_t e = op.indptr[i]; e < op.indptr[i + 1]; ++e) {
      const int64_t j = next_column(op, e, x, x_stride, width * sizeof(float), last_edge);
      if (kCheckIds && C10_UNLIKELY(!in_range(j, op.num_rows))) {
        bad = true;
        continue;
      }
      const float w = edge_coefficient(op, e, j);
      const float* xj = x + j * x_stride;
      for (int64_t f = 0; f < width; ++f) acc[f] += w * xj[f];
    }
    const float r = op.row_scale ? op.row_scale[i] : 1.0f;
    float* oi = op.out + i * op.out_stride;
    for (int64_t f = 0; f < width; ++f) oi[f] = r * acc[f];
  }
  return bad;
}

// Rows [begin, end) for a sparse x (CSR: x_indptr, x_cols, x_values): each output row is summed
// in place from the few nonzeros of its neighbours' rows, e.g. FastRP's first product with a very
// sparse random projection (~sqrt(n) * width nonzeros in all). Column ids of x are checked as
// they are read, like those of the matrix; returns whether one of either was skipped.
template <typename Index>
bool product_sparse_rows(const Operands<Index>& op, const int64_t* x_indptr, const int64_t* x_cols,
                         const float* x_values, int64_t width, int64_t begin, int64_t end) {
  bool bad = false;
  for (int64_t i = begin; i < end; ++i) {
    float* oi = op.out + i * op.out_stride;
    std::fill(oi, oi + width, 0.0f);
    const float r = op.row_scale ? op.row_scale[i] : 1.0f;
    const auto add_row = [&](int64_t j, float w) {
      for (int64_t k = x_indptr[j]; k < x_indptr[j + 1]; ++k) {
        if (C10_LIKELY(in_range(x_cols[k], width))) oi[x_cols[k]] += r * w * x_values[k];
        else bad = true;
      }
    };
    if (op.self_loops) add_row(i, self_coefficient(op.col_scale, true, i));
    for (int64_t e = op.indptr[i]; e < op.indptr[i + 1]; ++e) {
      const int64_t j = static_cast<int64_t>(op.indices[e]);
      if (C10_LIKELY(in_range(j, op.num_rows))) add_row(j, edge_coefficient(op, e, j));
      else bad = true;
    }
  }
  return bad;
}

// x [n, width] (rows strided, each contiguous) in tile-major order, the last tile zero-padded.
at::Tensor pack_tiles(const at::Tensor& x) {
  const int64_t n = x.size(0), width = x.size(1), tiles = (width + kTile - 1) / kTile;
  at::Tensor packed = at::empty({tiles, n, kTile}, x.options());
  const float* src = x.data_ptr<float>();
  float* dst = packed.data_ptr<float>();
  const int64_t stride = x.stride(0);
  at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t col = t * kTile, w = std::min(kTile, width - col);
      for (int64_t i = begin; i < end; ++i) {
        float* d = dst + (t * n + i) * kTile;
        std::copy_n(src + i * stride + col, w, d);
        std::fill(d + w, d + kTile, 0.0f);
      }
    }
  });
  return packed;
}

// Whether two [n, width] float tables with contiguous rows share memory: their spans intersect
// and they are not disjoint column blocks of one table.
bool overlaps(const at::Tensor& a, const at::Tensor& b) {
  const auto span = [](const at::Tensor& t) {
    const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
    const auto bytes = static_cast<uintptr_t>(((t.size(0) - 1) * t.stride(0) + t.size(1)) * t.element_size());
    return std::make_pair(begin, begin + bytes);
  };
  const auto [a_begin, a_end] = span(a);
  const auto [b_begin, b_end] = span(b);
  if (a.numel() == 0 || a_end <= b_begin || b_end <= a_begin) return false;
  if (a.stride(0) != b.stride(0)) return true;
  const uintptr_t row_bytes = a.stride(0) * a.element_size(), width_bytes = a.size(1) * a.element_size();
  const uintptr_t shift = (a_begin > b_begin ? a_begin - b_begin : b_begin - a_begin) % row_bytes;
  return shift < width_bytes || row_bytes - shift < width_bytes;
}

const float* optional_vector(const std::optional<at::Tensor>& t, int64_t size, const char* name) {
  if (!t.has_value()) return nullptr;
  TORCH_CHECK_VALUE(t->scalar_type() == at::kFloat && t->dim() == 1 && t->is_contiguous() && t->numel() == size,
                    name, " must be a contiguous 1-D float32 tensor of ", size, " entries, got shape ", t->sizes(),
                    " and dtype ", t->scalar_type());
  return t->data_ptr<float>();
}

// The matrix side of a product (CSR, optional weights and scalings) and its output.
template <typename Index>
Operands<Index> matrix_operands(const at::Tensor& indptr, const at::Tensor& indices,
                                const std::optional<at::Tensor>& edge_weight, const std::optional<at::Tensor>& row_scale,
                                const std::optional<at::Tensor>& col_scale, bool self_loops, at::Tensor& out) {
  const int64_t n = indptr.numel() - 1;
  return {indptr.data_ptr<int64_t>(),
          indices.data_ptr<Index>(),
          n,
          optional_vector(edge_weight, indices.numel(), "edge_weight"),
          optional_vector(row_scale, n, "row_scale"),
          optional_vector(col_scale, n, "col_scale"),
          self_loops,
          out.data_ptr<float>(),
          out.stride(0)};
}

// The product of a dense x, all rows on all threads; returns whether an edge named no row of x.
template <bool kCheckIds, typename Index>
bool product(const Operands<Index>& op, const at::Tensor& x) {
  const int64_t n = op.num_rows, width = x.size(1);
  std::atomic<bool> bad_ids{false};
  if (n * kTile * static_cast<int64_t>(sizeof(float)) > kTiledSliceBytes) {
    for_each_row_range_balanced(op.indptr, n, [&](int64_t begin, int64_t end) {
      if (product_rows<kCheckIds>(op, x.data_ptr<float>(), x.stride(0), width, begin, end)) bad_ids = true;
    });
  } else {
    const at::Tensor packed = pack_tiles(x);
    for_each_row_range_balanced(op.indptr, n, [&](int64_t begin, int64_t end) {
      for (int64_t col = 0; col < width; col += kTile)
        if (product_tile<kCheckIds>(op, packed.data_ptr<float>() + col * n, col, std::min(kTile, width - col),
                                    begin, end))
          bad_ids = true;
    });
  }
  return bad_ids;
}

}  // namespace

void scaled_spmm_cpu(const at::Tensor& indptr, const at::Tensor& indices, const std::optional<at::Tensor>& edge_weight,
                     const std::optional<at::Tensor>& row_scale, const std::optional<at::Tensor>& col_scale,
                     bool self_loops, const at::Tensor& x, at::Tensor& out, bool sound_csr) {
  check_indptr(indptr);
  check_index_tensor(indices, "indices");
  const int64_t n = indptr.numel() - 1;
  // Rows may be strided (a column block of a wider table) but each row must be contiguous.
  TORCH_CHECK_VALUE(x.scalar_type() == at::kFloat && x.dim() == 2 && x.size(0) == n && x.stride(1) == 1,
                    "x must be a float32 [num_nodes, width] tensor with contiguous rows");
  TORCH_CHECK_VALUE(out.scalar_type() == at::kFloat && out.dim() == 2 && out.sizes() == x.sizes() &&
                        out.stride(1) == 1,
                    "out must be a float32 tensor shaped like x with contiguous rows");
  TORCH_CHECK_VALUE(!overlaps(x, out), "out must not overlap x");
  // A CSR known sound had its rows and ids checked before; any other has its rows checked here
  // and its ids as the product reads them.
  if (sound_csr) check_indptr_ends(indptr, indices.numel());
  else check_row_pointers(indptr, indices.numel());
  if (n == 0 || x.size(1) == 0) return;
  AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "scaled_spmm", [&] {
    const auto op = matrix_operands<index_t>(indptr, indices, edge_weight, row_scale, col_scale, self_loops, out);
    if (sound_csr) product<false>(op, x);
    else if (product<true>(op, x)) raise_first_bad_id(op.indices, indices.numel(), n, "indices hold", "nodes");
  });
}

void scaled_spmm_sparse_x_cpu(const at::Tensor& indptr, const at::Tensor& indices,
                              const std::optional<at::Tensor>& edge_weight, const std::optional<at::Tensor>& row_scale,
                              const std::optional<at::Tensor>& col_scale, bool self_loops, const at::Tensor& x_indptr,
                              const at::Tensor& x_indices, const at::Tensor& x_values, at::Tensor& out) {
  check_indptr(indptr);
  check_index_tensor(indices, "indices");
  const int64_t n = indptr.numel() - 1;
  TORCH_CHECK_VALUE(x_indptr.scalar_type() == at::kLong && x_indptr.is_contiguous() && x_indptr.numel() == n + 1,
                    "x must be a sparse CSR [num_nodes, width] tensor with int64 row pointers");
  TORCH_CHECK_VALUE(x_indices.scalar_type() == at::kLong && x_indices.is_contiguous() &&
                        x_values.scalar_type() == at::kFloat && x_values.is_contiguous() &&
                        x_values.numel() == x_indices.numel(),
                    "x must hold int64 column indices and float32 values");
  TORCH_CHECK_VALUE(out.scalar_type() == at::kFloat && out.dim() == 2 && out.size(0) == n && out.stride(1) == 1,
                    "out must be a float32 [num_nodes, width] tensor with contiguous rows");
  check_row_pointers(indptr, indices.numel());
  check_row_pointers(x_indptr, x_indices.numel(), "x.crow_indices()");
  if (n == 0 || out.size(1) == 0) return;
  std::atomic<bool> bad_ids{false};
  AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "scaled_spmm_sparse_x", [&] {
    const auto op = matrix_operands<index_t>(indptr, indices, edge_weight, row_scale, col_scale, self_loops, out);
    for_each_row_range_balanced(op.indptr, n, [&](int64_t begin, int64_t end) {
      if (product_sparse_rows(op, x_indptr.data_ptr<int64_t>(), x_indices.data_ptr<int64_t>(),
                              x_values.data_ptr<float>(), out.size(1), begin, end))
        bad_ids = true;
    });
    if (bad_ids) {  // an id of the matrix, or else one of x
      raise_first_bad_id(op.indices, indices.numel(), n, "indices hold", "nodes");
      raise_first_bad_id(x_indices.data_ptr<int64_t>(), x_indices.numel(), out.size(1), "the column ids of x hold",
                         "columns");
    }
  });
}

}  // namespace gnnscale
