// CSR construction from COO, CSR -> CSC transposition and degree counting on the CPU.
//
// CSR construction and transposition are stable counting sorts by source (group_by_source), so
// their output is one well-defined order, whatever the thread count: rows ascending, and within a
// row (neighbour, input edge id) ascending.
#include "csr.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "checks.h"
#include "parallel.h"

namespace gnnscale {
namespace {

// Sorts slots [begin, end) by (target, edge id); a run already in order is left alone.
template <typename idx_t>
void sort_slots(idx_t* target, int64_t* edge_id, int64_t begin, int64_t end,
                std::vector<std::pair<idx_t, int64_t>>& buffer) {
  if (std::is_sorted(target + begin, target + end)) return;
  buffer.resize(end - begin);
  for (int64_t j = begin; j < end; ++j) buffer[j - begin] = {target[j], edge_id[j]};
  std::sort(buffer.begin(), buffer.end());
  for (int64_t j = begin; j < end; ++j) std::tie(target[j], edge_id[j]) = buffer[j - begin];
}

// Edges grouped by source: indptr plus, per slot, the target and the input edge id; or, when some
// source lay outside [0, num_keys), how many did (and nothing else).
template <typename idx_t>
struct GroupedEdges {
  at::Tensor indptr, indices, perm;
  int64_t sources_out_of_range = 0;
};

constexpr int64_t kMaxBuckets = 4096;

// Stable counting sort of items [0, n) by source(i) in [0, num_keys), skipping items with
// !keep(i); slot k of the result holds target(i) and edge_id(i) of the k-th item in that order.
// With sort_targets, each key's slots are then ordered by (target, edge id). Pass 1 counts the
// sources outside [0, num_keys) (one unsigned compare and a jump never taken on sound input), and
// the sort stops before anything is written for them; with kCheckSources false, the caller vouches
// for every source and pass 1 does not compare them.
//
// A direct scatter to num_keys cursors writes to random places all over the output, one cache
// miss per item. Instead, pass 1 scatters items into at most kMaxBuckets buckets of consecutive
// keys (few write streams, so writes stay in cache), and pass 2 sorts each bucket by key into its
// own contiguous stretch of the output, with counters small enough to stay in cache.
template <typename idx_t, typename id_t, bool kCheckSources, typename SourceFn, typename TargetFn, typename EdgeIdFn,
          typename KeepFn>
GroupedEdges<idx_t> group_by_source_as(int64_t n, int64_t num_keys, const SourceFn& source, const TargetFn& target,
                                    const EdgeIdFn& edge_id, const KeepFn& keep, bool sort_targets) {
  int shift = 0;
  while ((num_keys >> shift) >= kMaxBuckets) ++shift;
  const int64_t num_buckets = num_keys == 0 ? 0 : ((num_keys - 1) >> shift) + 1;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n / 65536 + 1));

  // Pass 1: per-chunk bucket counts, turned into per-chunk write cursors.
  std::vector<int64_t> cursor(static_cast<size_t>(num_buckets * chunks), 0);
  std::vector<int64_t> out_of_range(static_cast<size_t>(chunks), 0);
  for_each_part(n, chunks, [&](int64_t c, int64_t begin, int64_t end) {
    // Local copies: the counts are int64 stores, which might alias the captured sizes and cursor,
    // so the compiler would reload those for every item.
    int64_t* counts = cursor.data();
    const int64_t keys = num_keys, stride = chunks;
    const int key_shift = shift;
    int64_t outside = 0;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t key = source(i);
      if (kCheckSources && C10_UNLIKELY(!in_range(key, keys))) {
        ++outside;
        continue;
      }
      if (keep(i)) ++counts[(key >> key_shift) * stride + c];
    }
    out_of_range[c] = outside;
  });
  GroupedEdges<idx_t> out;
  for (int64_t c = 0; c < chunks; ++c) out.sources_out_of_range += out_of_range[c];
  if (out.sources_out_of_range > 0) return out;
  std::vector<int64_t> bucket_begin(static_cast<size_t>(num_buckets + 1), 0);
  int64_t total = 0;
  for (int64_t b = 0; b < num_buckets; ++b) {
    bucket_begin[b] = total;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t count = cursor[b * chunks + c];
      cursor[b * chunks + c] = total;
      total += count;
    }
  }
  bucket_begin[num_buckets] = total;
  // Bucketed items, one record each so that every bucket is a single write stream. Left
  // uninitialised on purpose: zero-filling would be a whole extra pass over memory.
  struct Staged {
    uint32_t local_key;  // the key's offset inside its bucket
    idx_t target;
    id_t id;
  };
  std::unique_ptr<Staged[]> staged(new Staged[static_cast<size_t>(total)]);
  const int64_t local_mask = (int64_t(1) << shift) - 1;
  for_each_part(n, chunks, [&](int64_t c, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (!keep(i)) continue;
      const int64_t key = source(i);
      staged[cursor[(key >> shift) * chunks + c]++] = {static_cast<uint32_t>(key & local_mask), target(i),
                                                       static_cast<id_t>(edge_id(i))};
    }
  });

  // Pass 2: each bucket counting-sorted by key into its stretch of the output.
  out.indptr = at::empty({num_keys + 1}, at::kLong);
  out.indices = at::empty({total}, c10::CppTypeToScalarType<idx_t>::value);
  out.perm = at::empty({total}, at::kLong);
  int64_t* indptr = out.indptr.template data_ptr<int64_t>();
  idx_t* indices = out.indices.template data_ptr<idx_t>();
  int64_t* perm = out.perm.template data_ptr<int64_t>();
  indptr[num_keys] = total;
  at::parallel_for(0, num_buckets, 1, [&](int64_t first, int64_t last) {
    std::vector<int64_t> position;
    std::vector<std::pair<idx_t, int64_t>> buffer;
    for (int64_t b = first; b < last; ++b) {
      const int64_t key_begin = b << shift;
      const int64_t width = std::min<int64_t>(num_keys - key_begin, int64_t(1) << shift);
      position.assign(static_cast<size_t>(width), 0);
      for (int64_t j = bucket_begin[b]; j < bucket_begin[b + 1]; ++j) ++position[staged[j].local_key];
      int64_t offset = bucket_begin[b];
      for (int64_t k = 0; k < width; ++k) {
        indptr[key_begin + k] = offset;
        const int64_t count = position[k];
        position[k] = offset;
        offset += count;
      }
      for (int64_t j = bucket_begin[b]; j < bucket_begin[b + 1]; ++j) {
        const Staged& item = staged[j];
        const int64_t slot = position[item.local_key]++;
        indices[slot] = item.target;
        perm[slot] = item.id;
      }
      if (sort_targets)  // while the bucket is still in cache
        for (int64_t k = 0; k < width; ++k) sort_slots(indices, perm, indptr[key_begin + k], position[k], buffer);
    }
  });
  return out;
}

// Edge ids are staged in 32 bits when they fit, which cuts the memory traffic of the scatter.
template <typename idx_t, bool kCheckSources = true, typename... Fns>
GroupedEdges<idx_t> group_by_source(int64_t n, int64_t num_keys, const Fns&... fns) {
  if (n <= std::numeric_limits<uint32_t>::max())
    return group_by_source_as<idx_t, uint32_t, kCheckSources>(n, num_keys, fns...);
  return group_by_source_as<idx_t, int64_t, kCheckSources>(n, num_keys, fns...);
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
  // Every id becomes a bucket or a counter index below, in passes that read each id twice.
  check_ids(src, m, num_nodes, "row holds", "nodes");
  check_ids(dst, m, num_nodes, "col holds", "nodes");
  // With symmetrize, item i >= m is the reverse of edge i - m; a self-loop has no separate reverse.
  auto source = [&](int64_t i) -> int64_t { return i < m ? src[i] : dst[i - m]; };
  auto keep = [&](int64_t i) {
    if (i < m) return !(drop_self_loops && src[i] == dst[i]);
    return src[i - m] != dst[i - m];
  };
  auto target = [&](int64_t i) -> idx_t { return i < m ? dst[i] : src[i - m]; };
  auto edge_id = [&](int64_t i) -> int64_t { return i < m ? i : i - m; };
  auto grouped = group_by_source<idx_t>(symmetrize ? 2 * m : m, num_nodes, source, target, edge_id, keep,
                                        /*sort_targets=*/true);
  TORCH_INTERNAL_ASSERT(grouped.sources_out_of_range == 0);  // the ids were checked above
  at::Tensor indptr = grouped.indptr, indices = grouped.indices, perm = grouped.perm;
  if (drop_duplicates) drop_duplicate_neighbours<idx_t>(indptr, indices, perm);
  return {indptr, indices, perm};
}

template <typename idx_t, bool kCheckIds>
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
  // Column ids are checked as the grouping reads them (they are its sources), then named; those of
  // a CSR known sound are trusted.
  auto grouped = group_by_source<idx_t, kCheckIds>(
      indices.numel(), num_cols, [&](int64_t i) -> int64_t { return idx[i]; },
      [&](int64_t i) { return edge_row[i]; }, [](int64_t i) { return i; }, [](int64_t) { return true; },
      /*sort_targets=*/false);  // CSR order visits rows ascending: each column's list comes out sorted
  if (grouped.sources_out_of_range > 0) raise_first_bad_id(idx, indices.numel(), num_cols, "indices hold", "columns");
  return {grouped.indptr, grouped.indices, grouped.perm};
}

// One histogram of num_nodes counters per chunk: bounding the chunk count keeps the histograms
// no larger than the input itself, whatever the thread count.
int64_t histogram_chunks(int64_t num_items, int64_t num_keys) {
  const int64_t by_memory = std::max<int64_t>(1, 2 * num_items / std::max<int64_t>(num_keys, 1));
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), by_memory));
}

template <typename idx_t>
at::Tensor degree_impl(const at::Tensor& index, int64_t num_nodes) {
  const idx_t* idx = index.data_ptr<idx_t>();
  const int64_t n = index.numel();
  const int64_t chunks = histogram_chunks(n, num_nodes);
  std::vector<std::vector<int64_t>> partial(chunks);
  std::atomic<bool> bad_ids{false};  // skipped as they are read, named after the count
  for_each_part(n, chunks, [&](int64_t c, int64_t begin, int64_t end) {
    partial[c].assign(num_nodes, 0);
    int64_t* counts = partial[c].data();
    bool bad = false;
    for (int64_t i = begin; i < end; ++i) {
      if (C10_LIKELY(in_range(idx[i], num_nodes))) ++counts[idx[i]];
      else bad = true;
    }
    if (bad) bad_ids.store(true, std::memory_order_relaxed);
  });
  if (bad_ids.load()) raise_first_bad_id(idx, n, num_nodes, "index holds", "nodes");
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
                                                              int64_t num_cols, bool sound_csr) {
  check_indptr(indptr);
  check_index_tensor(indices, "indices");
  TORCH_CHECK_VALUE(num_cols >= 0, "num_cols must be non-negative");
  // A CSR known sound had its rows and ids checked before: only its O(1) ends are checked here.
  if (sound_csr) check_indptr_ends(indptr, indices.numel());
  else check_row_pointers(indptr, indices.numel());
  return AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "csr_to_csc", [&] {
    if (sound_csr) return csr_to_csc_impl<index_t, false>(indptr, indices, num_cols);
    return csr_to_csc_impl<index_t, true>(indptr, indices, num_cols);
  });
}

at::Tensor degree_cpu(const at::Tensor& index, int64_t num_nodes) {
  check_index_tensor(index, "index");
  TORCH_CHECK_VALUE(num_nodes >= 0, "num_nodes must be non-negative");
  return AT_DISPATCH_INDEX_TYPES(index.scalar_type(), "degree",
                                 [&] { return degree_impl<index_t>(index, num_nodes); });
}

}  // namespace gnnscale
