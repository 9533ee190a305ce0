// CSR construction from COO, CSR -> CSC transposition and degree counting on the CPU.
//
// All three are stable counting sorts: edges are cut into contiguous chunks, each chunk counts its
// keys into its own histogram, the histograms are scanned into per-chunk write cursors, and each
// chunk scatters its edges in input order. The result is deterministic for any thread count.
#include "csr.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "parallel.h"

namespace gnnscale {
namespace {

// One histogram of `num_keys` counters per chunk: bounding the chunk count keeps the histograms
// no larger than the edge list itself, whatever the thread count.
int64_t histogram_chunks(int64_t num_items, int64_t num_keys) {
  const int64_t by_memory = std::max<int64_t>(1, 2 * num_items / std::max<int64_t>(num_keys, 1));
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), by_memory));
}

// Stable counting sort of items [0, n) by key(i) in [0, num_keys), skipping items with !keep(i).
// allocate(total) is called once the output size is known, then emit(i, slot) places item i in its
// output slot. Returns indptr (int64, num_keys + 1).
template <typename KeyFn, typename KeepFn, typename AllocateFn, typename EmitFn>
at::Tensor stable_bucket_scatter(int64_t n, int64_t num_keys, const KeyFn& key, const KeepFn& keep,
                                 const AllocateFn& allocate, const EmitFn& emit) {
  const int64_t chunks = histogram_chunks(n, num_keys);
  // cursor[k * chunks + c]: first a count, then the write position of chunk c for key k.
  std::vector<int64_t> cursor(static_cast<size_t>(num_keys * chunks), 0);
  for_each_part(n, chunks, [&](int64_t c, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      if (keep(i)) ++cursor[key(i) * chunks + c];
  });
  at::Tensor indptr = at::empty({num_keys + 1}, at::kLong);
  int64_t* ptr = indptr.data_ptr<int64_t>();
  int64_t offset = 0;
  for (int64_t k = 0; k < num_keys; ++k) {
    ptr[k] = offset;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t count = cursor[k * chunks + c];
      cursor[k * chunks + c] = offset;
      offset += count;
    }
  }
  ptr[num_keys] = offset;
  allocate(offset);
  for_each_part(n, chunks, [&](int64_t c, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      if (keep(i)) emit(i, cursor[key(i) * chunks + c]++);
  });
  return indptr;
}

// Output of a scatter: neighbour ids and, for each slot, the id of the input edge it came from.
template <typename idx_t>
struct EdgeOutput {
  at::Tensor indices, perm;
  idx_t* idx = nullptr;
  int64_t* eid = nullptr;
  void allocate(int64_t num) {
    indices = at::empty({num}, c10::CppTypeToScalarType<idx_t>::value);
    perm = at::empty({num}, at::kLong);
    idx = indices.template data_ptr<idx_t>();
    eid = perm.data_ptr<int64_t>();
  }
};

// Sorts each row's neighbours by (neighbour, edge id); rows already in order are left alone.
template <typename idx_t>
void sort_rows(const at::Tensor& indptr, at::Tensor& indices, at::Tensor& perm) {
  const int64_t* ptr = indptr.data_ptr<int64_t>();
  idx_t* idx = indices.data_ptr<idx_t>();
  int64_t* eid = perm.data_ptr<int64_t>();
  for_each_row_range_balanced(ptr, indptr.numel() - 1, [&](int64_t row_begin, int64_t row_end) {
    std::vector<std::pair<idx_t, int64_t>> buffer;
    for (int64_t r = row_begin; r < row_end; ++r) {
      const int64_t b = ptr[r], e = ptr[r + 1];
      if (std::is_sorted(idx + b, idx + e)) continue;
      buffer.resize(e - b);
      for (int64_t j = b; j < e; ++j) buffer[j - b] = {idx[j], eid[j]};
      std::sort(buffer.begin(), buffer.end());
      for (int64_t j = b; j < e; ++j) std::tie(idx[j], eid[j]) = buffer[j - b];
    }
  });
}

// Keeps the first of each run of equal neighbours in every (sorted) row.
template <typename idx_t>
void drop_duplicate_neighbours(at::Tensor& indptr, at::Tensor& indices, at::Tensor& perm) {
  const int64_t num_rows = indptr.numel() - 1;
  const int64_t* ptr = indptr.data_ptr<int64_t>();
  const idx_t* idx = indices.data_ptr<idx_t>();
  const int64_t* eid = perm.data_ptr<int64_t>();
  at::Tensor new_indptr = at::empty_like(indptr);
  int64_t* new_ptr = new_indptr.data_ptr<int64_t>();
  new_ptr[0] = 0;
  at::parallel_for(0, num_rows, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t unique = 0;
      for (int64_t j = ptr[r]; j < ptr[r + 1]; ++j) unique += (j == ptr[r] || idx[j] != idx[j - 1]);
      new_ptr[r + 1] = unique;
    }
  });
  for (int64_t r = 0; r < num_rows; ++r) new_ptr[r + 1] += new_ptr[r];
  if (new_ptr[num_rows] == ptr[num_rows]) return;
  at::Tensor new_indices = at::empty({new_ptr[num_rows]}, indices.options());
  at::Tensor new_perm = at::empty({new_ptr[num_rows]}, perm.options());
  idx_t* out_idx = new_indices.data_ptr<idx_t>();
  int64_t* out_eid = new_perm.data_ptr<int64_t>();
  for_each_row_range_balanced(ptr, num_rows, [&](int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; ++r) {
      int64_t out = new_ptr[r];
      for (int64_t j = ptr[r]; j < ptr[r + 1]; ++j) {
        if (j != ptr[r] && idx[j] == idx[j - 1]) continue;
        out_idx[out] = idx[j];
        out_eid[out++] = eid[j];
      }
    }
  });
  indptr = new_indptr;
  indices = new_indices;
  perm = new_perm;
}

template <typename idx_t>
std::tuple<at::Tensor, at::Tensor, at::Tensor> coo_to_csr_impl(const at::Tensor& row, const at::Tensor& col,
                                                               int64_t num_nodes, bool drop_self_loops,
                                                               bool drop_duplicates, bool symmetrize) {
  const idx_t* src = row.data_ptr<idx_t>();
  const idx_t* dst = col.data_ptr<idx_t>();
  const int64_t m = row.numel();
  // With symmetrize, item i >= m is the reverse of edge i - m; a self-loop has no separate reverse.
  auto source = [&](int64_t i) -> int64_t { return i < m ? src[i] : dst[i - m]; };
  auto keep = [&](int64_t i) {
    if (i < m) return !(drop_self_loops && src[i] == dst[i]);
    return src[i - m] != dst[i - m];
  };
  EdgeOutput<idx_t> out;
  auto emit = [&](int64_t i, int64_t slot) {
    out.idx[slot] = i < m ? dst[i] : src[i - m];
    out.eid[slot] = i < m ? i : i - m;
  };
  at::Tensor indptr = stable_bucket_scatter(
      symmetrize ? 2 * m : m, num_nodes, source, keep, [&](int64_t total) { out.allocate(total); }, emit);
  at::Tensor indices = out.indices, perm = out.perm;
  sort_rows<idx_t>(indptr, indices, perm);
  if (drop_duplicates) drop_duplicate_neighbours<idx_t>(indptr, indices, perm);
  return {indptr, indices, perm};
}

template <typename idx_t>
std::tuple<at::Tensor, at::Tensor, at::Tensor> csr_to_csc_impl(const at::Tensor& indptr, const at::Tensor& indices,
                                                               int64_t num_cols) {
  const int64_t num_rows = indptr.numel() - 1;
  const int64_t* ptr = indptr.data_ptr<int64_t>();
  const idx_t* idx = indices.data_ptr<idx_t>();
  // Row of each edge, so the scatter below can walk edges in CSR order (rows ascending), which
  // makes every column's row list come out sorted without a further sort.
  std::vector<idx_t> edge_row(static_cast<size_t>(indices.numel()));
  for_each_row_range_balanced(ptr, num_rows, [&](int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; ++r)
      std::fill(edge_row.begin() + ptr[r], edge_row.begin() + ptr[r + 1], static_cast<idx_t>(r));
  });
  EdgeOutput<idx_t> out;
  auto emit = [&](int64_t i, int64_t slot) {
    out.idx[slot] = edge_row[i];
    out.eid[slot] = i;
  };
  at::Tensor out_ptr = stable_bucket_scatter(
      indices.numel(), num_cols, [&](int64_t i) -> int64_t { return idx[i]; }, [](int64_t) { return true; },
      [&](int64_t total) { out.allocate(total); }, emit);
  return {out_ptr, out.indices, out.perm};
}

template <typename idx_t>
at::Tensor degree_impl(const at::Tensor& index, int64_t num_nodes) {
  const idx_t* idx = index.data_ptr<idx_t>();
  const int64_t n = index.numel();
  const int64_t chunks = histogram_chunks(n, num_nodes);
  std::vector<std::vector<int64_t>> partial(chunks);
  for_each_part(n, chunks, [&](int64_t c, int64_t begin, int64_t end) {
    partial[c].assign(num_nodes, 0);
    for (int64_t i = begin; i < end; ++i) ++partial[c][idx[i]];
  });
  at::Tensor out = at::empty({num_nodes}, at::kLong);
  int64_t* deg = out.data_ptr<int64_t>();
  at::parallel_for(0, num_nodes, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      int64_t total = 0;
      for (const auto& counts : partial) total += counts[v];
      deg[v] = total;
    }
  });
  return out;
}

void check_index_tensor(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 1, name, " must be 1-D, got ", t.dim(), " dimensions");
  TORCH_CHECK_VALUE(t.scalar_type() == at::kInt || t.scalar_type() == at::kLong, name,
                    " must be int32 or int64, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> coo_to_csr_cpu(const at::Tensor& row, const at::Tensor& col,
                                                              int64_t num_nodes, bool drop_self_loops,
                                                              bool drop_duplicates, bool symmetrize) {
  check_index_tensor(row, "row");
  check_index_tensor(col, "col");
  TORCH_CHECK_VALUE(row.scalar_type() == col.scalar_type(), "row and col must share a dtype");
  TORCH_CHECK_VALUE(row.numel() == col.numel(), "row and col differ in length: ", row.numel(), " vs ", col.numel());
  TORCH_CHECK_VALUE(num_nodes >= 0, "num_nodes must be non-negative");
  return AT_DISPATCH_INDEX_TYPES(row.scalar_type(), "coo_to_csr", [&] {
    return coo_to_csr_impl<index_t>(row, col, num_nodes, drop_self_loops, drop_duplicates, symmetrize);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> csr_to_csc_cpu(const at::Tensor& indptr, const at::Tensor& indices,
                                                              int64_t num_cols) {
  TORCH_CHECK_VALUE(indptr.dim() == 1 && indptr.scalar_type() == at::kLong && indptr.is_contiguous() &&
                        indptr.numel() >= 1,
                    "indptr must be a contiguous 1-D int64 tensor with at least one entry");
  check_index_tensor(indices, "indices");
  TORCH_CHECK_VALUE(num_cols >= 0, "num_cols must be non-negative");
  return AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "csr_to_csc",
                                 [&] { return csr_to_csc_impl<index_t>(indptr, indices, num_cols); });
}

at::Tensor degree_cpu(const at::Tensor& index, int64_t num_nodes) {
  check_index_tensor(index, "index");
  TORCH_CHECK_VALUE(num_nodes >= 0, "num_nodes must be non-negative");
  return AT_DISPATCH_INDEX_TYPES(index.scalar_type(), "degree",
                                 [&] { return degree_impl<index_t>(index, num_nodes); });
}

}  // namespace gnnscale
