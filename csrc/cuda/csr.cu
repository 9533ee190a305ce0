// CSR construction, transposition and degree counting on the GPU.
//
// Same contract as csrc/cpu/csr.cpp: rows sorted by (neighbour, edge id), the first edge of a
// duplicate run kept, perm mapping every output slot to its input edge. Ordering comes from two
// stable radix sorts (by neighbour, then by row), so the result equals the CPU one exactly.
// torch's operators one header each: with ATen/ATen.h (every operator's header) nvcc takes 1.7x as long.
#include <ATen/Dispatch.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/aminmax.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/repeat_interleave.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

namespace gnnscale {
namespace {

constexpr int kThreads = 256;

inline int blocks_for(int64_t n) {
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(1) << 20));
}

template <typename idx_t>
__global__ void count_kernel(const idx_t* __restrict__ index, int64_t n, unsigned long long* __restrict__ counts) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    atomicAdd(counts + index[i], 1ULL);
}

// keep[i] = 1 unless slot i repeats the (row, neighbour) pair of slot i - 1.
template <typename idx_t>
__global__ void first_of_run_kernel(const idx_t* __restrict__ row, const idx_t* __restrict__ col, int64_t n,
                                    bool* __restrict__ keep) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    keep[i] = i == 0 || row[i] != row[i - 1] || col[i] != col[i - 1];
}

at::Tensor count(const at::Tensor& index, int64_t num_nodes) {
  at::Tensor counts = at::zeros({num_nodes}, index.options().dtype(at::kLong));
  const int64_t n = index.numel();
  if (n == 0) return counts;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_INDEX_TYPES(index.scalar_type(), "count", [&] {
    count_kernel<index_t><<<blocks_for(n), kThreads, 0, stream>>>(
        index.data_ptr<index_t>(), n, reinterpret_cast<unsigned long long*>(counts.data_ptr<int64_t>()));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return counts;
}

at::Tensor indptr_from_sorted_rows(const at::Tensor& rows, int64_t num_rows) {
  at::Tensor indptr = at::zeros({num_rows + 1}, rows.options().dtype(at::kLong));
  indptr.narrow(0, 1, num_rows).copy_(at::cumsum(count(rows, num_rows), 0));
  return indptr;
}

// Orders edges by (row, col, edge id) with two stable sorts and returns the permutation.
at::Tensor lexicographic_order(const at::Tensor& row, const at::Tensor& col) {
  at::Tensor by_col = std::get<1>(at::sort(col, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  at::Tensor by_row = std::get<1>(at::sort(row.index_select(0, by_col), /*stable=*/true, 0, false));
  return by_col.index_select(0, by_row);
}

void check_index(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.is_cuda() && t.dim() == 1 && (t.scalar_type() == at::kInt || t.scalar_type() == at::kLong),
                    name, " must be a 1-D int32/int64 CUDA tensor");
}

// The kernels scatter to the ids they read, so every id must lie in [0, bound): one reduction on
// the GPU, against the sorts that follow.
void check_ids(const at::Tensor& ids, int64_t bound, const char* name) {
  if (ids.numel() == 0) return;
  const auto [low, high] = at::aminmax(ids);
  const int64_t lowest = low.item<int64_t>(), highest = high.item<int64_t>();
  TORCH_CHECK_VALUE(lowest >= 0, name, " holds a negative id (", lowest, ")");
  TORCH_CHECK_VALUE(highest < bound, name, " holds id ", highest, ", out of range for ", bound, " nodes");
}

// indptr starts at 0, never decreases and ends at the number of indices.
void check_row_pointers(const at::Tensor& indptr, int64_t num_edges) {
  TORCH_CHECK_VALUE(indptr.numel() >= 1, "indptr must hold at least one entry");
  const int64_t first = indptr[0].item<int64_t>(), last = indptr[-1].item<int64_t>();
  TORCH_CHECK_VALUE(first == 0, "indptr must start at 0, starts at ", first);
  TORCH_CHECK_VALUE(last == num_edges, "indptr ends at ", last, " but there are ", num_edges, " indices");
  const int64_t num_rows = indptr.numel() - 1;
  const bool monotone = (indptr.narrow(0, 1, num_rows) >= indptr.narrow(0, 0, num_rows)).all().item<bool>();
  TORCH_CHECK_VALUE(monotone, "indptr is not monotone");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> coo_to_csr_cuda(const at::Tensor& row_in, const at::Tensor& col_in,
                                                               int64_t num_nodes, bool drop_self_loops,
                                                               bool drop_duplicates, bool symmetrize) {
  check_index(row_in, "row");
  check_index(col_in, "col");
  TORCH_CHECK_VALUE(row_in.scalar_type() == col_in.scalar_type(), "row and col must share a dtype");
  TORCH_CHECK_VALUE(row_in.numel() == col_in.numel(), "row and col differ in length");
  c10::cuda::CUDAGuard guard(row_in.device());
  check_ids(row_in, num_nodes, "row");
  check_ids(col_in, num_nodes, "col");
  at::Tensor row = row_in.contiguous(), col = col_in.contiguous();
  at::Tensor eid = at::arange(row.numel(), row.options().dtype(at::kLong));
  if (drop_self_loops) {
    at::Tensor kept = at::nonzero(row != col).squeeze(1);
    row = row.index_select(0, kept);
    col = col.index_select(0, kept);
    eid = eid.index_select(0, kept);
  }
  if (symmetrize) {
    at::Tensor reverse = at::nonzero(row != col).squeeze(1);
    at::Tensor new_row = at::cat({row, col.index_select(0, reverse)});
    at::Tensor new_col = at::cat({col, row.index_select(0, reverse)});
    eid = at::cat({eid, eid.index_select(0, reverse)});
    row = new_row;
    col = new_col;
  }
  // Reverse edges were appended after all forward ones, so eid is not yet ascending; make it so,
  // and the two stable sorts below leave ties in eid order: (row, col, eid) as on the CPU.
  at::Tensor by_eid = std::get<1>(at::sort(eid, /*stable=*/true, 0, false));
  row = row.index_select(0, by_eid);
  col = col.index_select(0, by_eid);
  eid = eid.index_select(0, by_eid);
  at::Tensor order = lexicographic_order(row, col);
  row = row.index_select(0, order);
  col = col.index_select(0, order);
  eid = eid.index_select(0, order);
  if (drop_duplicates && row.numel() > 0) {
    at::Tensor keep = at::empty({row.numel()}, row.options().dtype(at::kBool));
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_INDEX_TYPES(row.scalar_type(), "first_of_run", [&] {
      first_of_run_kernel<index_t><<<blocks_for(row.numel()), kThreads, 0, stream>>>(
          row.data_ptr<index_t>(), col.data_ptr<index_t>(), row.numel(), keep.data_ptr<bool>());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    at::Tensor kept = at::nonzero(keep).squeeze(1);
    row = row.index_select(0, kept);
    col = col.index_select(0, kept);
    eid = eid.index_select(0, kept);
  }
  return {indptr_from_sorted_rows(row, num_nodes), col, eid};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> csr_to_csc_cuda(const at::Tensor& indptr, const at::Tensor& indices,
                                                               int64_t num_cols) {
  TORCH_CHECK_VALUE(indptr.is_cuda() && indptr.scalar_type() == at::kLong && indptr.dim() == 1,
                    "indptr must be a 1-D int64 CUDA tensor");
  check_index(indices, "indices");
  c10::cuda::CUDAGuard guard(indices.device());
  check_row_pointers(indptr, indices.numel());
  check_ids(indices, num_cols, "indices");
  const int64_t num_rows = indptr.numel() - 1;
  at::Tensor degree = indptr.narrow(0, 1, num_rows) - indptr.narrow(0, 0, num_rows);
  at::Tensor rows = at::repeat_interleave(at::arange(num_rows, indptr.options()), degree, /*dim=*/0,
                                           /*output_size=*/indices.numel())
                        .to(indices.scalar_type());
  // Edges are in row order already, so one stable sort by column gives sorted rows per column.
  at::Tensor perm = std::get<1>(at::sort(indices, /*stable=*/true, 0, false));
  at::Tensor cols = indices.index_select(0, perm);
  return {indptr_from_sorted_rows(cols, num_cols), rows.index_select(0, perm), perm};
}

at::Tensor degree_cuda(const at::Tensor& index, int64_t num_nodes) {
  check_index(index, "index");
  c10::cuda::CUDAGuard guard(index.device());
  check_ids(index, num_nodes, "index");
  return count(index.contiguous(), num_nodes);
}

}  // namespace
}  // namespace gnnscale

TORCH_LIBRARY_IMPL(gnnscale, CUDA, m) {
  m.impl("coo_to_csr", &gnnscale::coo_to_csr_cuda);
  m.impl("csr_to_csc", &gnnscale::csr_to_csc_cuda);
  m.impl("degree", &gnnscale::degree_cuda);
}
