// Multi-hop uniform neighbour sampling on the GPU: the CUDA implementation of
// gnnscale::neighbor_sample, producing exactly what the CPU kernel produces for the same seed.
//
// indptr lives in GPU memory; indices either in GPU memory or in pinned host memory, which the
// kernels read in place over PCIe (zero-copy, unified addressing). Rows and ids are checked as the
// kernels read them: a bad one raises a flag and is replaced by a harmless value (an empty row, the
// frontier node itself), so later kernels stay in bounds, and the call raises at its end. Per hop: a kernel counts
// each frontier node's sample size, a scan turns counts into offsets, a kernel draws the
// neighbours (the CPU's random streams and Floyd's algorithm, offsets sorted), then new nodes are
// numbered in order of first appearance: an atomicMin finds each new node's first edge, a scan
// over those first edges ranks them.
// torch's operators one header each: with ATen/ATen.h (every operator's header) nvcc takes 1.7x as long.
#include <ATen/Dispatch.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/aminmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <vector>

#include "cpu/checks.h"
#include "cpu/rng.h"

namespace gnnscale {
namespace {

constexpr int kThreads = 256;

inline int blocks_for(int64_t n) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20)));
}

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__device__ inline int64_t sample_size(int64_t degree, int64_t fanout, bool replace) {
  if (degree == 0) return 0;
  if (fanout < 0) return degree;
  return replace ? fanout : min(fanout, degree);
}

// Flag bits raised by the kernels for bad input.
constexpr int kBadRow = 1, kBadId = 2;

__global__ void count_kernel(const int64_t* __restrict__ indptr, int64_t num_edges,
                             const int64_t* __restrict__ frontier, int64_t n, int64_t fanout, bool replace,
                             int64_t* __restrict__ counts, int* __restrict__ problems) {
  GRID_STRIDE(i, n) {
    const int64_t v = frontier[i];
    const bool sound = row_in_bounds(indptr[v], indptr[v + 1], num_edges);
    if (!sound) atomicOr(problems, kBadRow);
    counts[i] = sound ? sample_size(indptr[v + 1] - indptr[v], fanout, replace) : 0;
  }
}

// One thread per frontier node: the CPU sampler's draws, written at that node's offset.
template <typename idx_t>
__global__ void sample_kernel(const int64_t* __restrict__ indptr, const idx_t* __restrict__ indices,
                              int64_t num_nodes, int64_t num_edges, const int64_t* __restrict__ frontier, int64_t n,
                              int64_t position_base, const int64_t* __restrict__ offsets, int64_t fanout,
                              bool replace, uint64_t seed, uint64_t hop, int64_t* __restrict__ out_src,
                              int64_t* __restrict__ out_slot, int64_t* __restrict__ out_dst,
                              int* __restrict__ problems) {
  GRID_STRIDE(i, n) {
    const int64_t v = frontier[i];
    if (!row_in_bounds(indptr[v], indptr[v + 1], num_edges)) continue;  // counted as empty, flagged
    const int64_t begin = indptr[v], degree = indptr[v + 1] - begin;
    const int64_t first = offsets[i], count = sample_size(degree, fanout, replace);
    int64_t* slot = out_slot + first;
    if (count == degree && (fanout < 0 || !replace)) {
      for (int64_t j = 0; j < degree; ++j) slot[j] = j;
    } else {
      Rng rng(seed, hop, static_cast<uint64_t>(position_base + i));
      if (replace) {
        for (int64_t j = 0; j < count; ++j) slot[j] = static_cast<int64_t>(rng.below(degree));
      } else {
        // Floyd's algorithm, as on the CPU (membership by scanning what was drawn so far).
        int64_t drawn = 0;
        for (int64_t j = degree - count; j < degree; ++j) {
          const int64_t t = static_cast<int64_t>(rng.below(j + 1));
          bool seen = false;
          for (int64_t q = 0; q < drawn && !seen; ++q) seen = slot[q] == t;
          slot[drawn++] = seen ? j : t;
        }
      }
      for (int64_t a = 1; a < count; ++a) {  // insertion sort: counts are fanout-sized
        const int64_t value = slot[a];
        int64_t b = a - 1;
        for (; b >= 0 && slot[b] > value; --b) slot[b + 1] = slot[b];
        slot[b + 1] = value;
      }
    }
    for (int64_t j = 0; j < count; ++j) {
      slot[j] += begin;
      const int64_t u = static_cast<int64_t>(indices[slot[j]]);
      const bool known = in_range(u, num_nodes);
      if (!known) atomicOr(problems, kBadId);
      out_src[first + j] = known ? u : v;
      out_dst[first + j] = position_base + i;
    }
  }
}

__global__ void first_edge_kernel(const int64_t* __restrict__ src, int64_t n, const int64_t* __restrict__ local,
                                  unsigned long long* __restrict__ first_edge) {
  GRID_STRIDE(p, n) {
    const int64_t u = src[p];
    if (local[u] < 0) atomicMin(first_edge + u, static_cast<unsigned long long>(p));
  }
}

__global__ void mark_new_kernel(const int64_t* __restrict__ src, int64_t n, const int64_t* __restrict__ local,
                                const unsigned long long* __restrict__ first_edge, int64_t* __restrict__ is_new) {
  GRID_STRIDE(p, n) {
    const int64_t u = src[p];
    is_new[p] = local[u] < 0 && first_edge[u] == static_cast<unsigned long long>(p);
  }
}

// rank: inclusive scan of is_new; the new node first seen at edge p gets id base + rank[p] - 1.
__global__ void number_new_kernel(const int64_t* __restrict__ src, int64_t n, const int64_t* __restrict__ is_new,
                                  const int64_t* __restrict__ rank, int64_t base, int64_t* __restrict__ local,
                                  int64_t* __restrict__ nodes) {
  GRID_STRIDE(p, n) {
    if (is_new[p]) {
      const int64_t id = base + rank[p] - 1;
      local[src[p]] = id;
      nodes[id] = src[p];
    }
  }
}

__global__ void to_local_kernel(const int64_t* __restrict__ src, int64_t n, const int64_t* __restrict__ local,
                                int64_t* __restrict__ row) {
  GRID_STRIDE(p, n) { row[p] = local[src[p]]; }
}

__global__ void assign_kernel(const int64_t* __restrict__ ids, int64_t n, int64_t* __restrict__ table,
                              bool sequential, int64_t value) {
  GRID_STRIDE(i, n) { table[ids[i]] = sequential ? i : value; }
}

template <typename idx_t>
std::vector<at::Tensor> sample_impl(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& seeds,
                                    const std::vector<int64_t>& fanouts, bool replace, int64_t seed) {
  const int64_t num_nodes = indptr.numel() - 1;
  const auto opts = seeds.options().dtype(at::kLong);
  auto stream = c10::cuda::getCurrentCUDAStream();
  // Device pointer of the indices: GPU memory, or pinned host memory reached through UVA.
  const idx_t* indices_ptr = indices.data_ptr<idx_t>();

  const int64_t num_edges = indices.numel();
  at::Tensor problems = at::zeros({1}, opts.dtype(at::kInt));
  at::Tensor local = at::full({num_nodes}, -1, opts);
  at::Tensor first_edge = at::full({num_nodes}, -1, opts);  // all ones: the largest unsigned value
  const int64_t batch = seeds.numel();
  // Capacity for every node the sample can reach; trimmed at the end.
  std::vector<at::Tensor> rows, cols, slots;
  at::Tensor nodes = seeds.clone();
  assign_kernel<<<blocks_for(batch), kThreads, 0, stream>>>(seeds.data_ptr<int64_t>(), batch,
                                                            local.data_ptr<int64_t>(), true, 0);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  std::vector<int64_t> num_sampled_nodes{batch}, num_sampled_edges;
  int64_t hop_begin = 0, hop_end = batch;
  for (size_t hop = 0; hop < fanouts.size(); ++hop) {
    const int64_t frontier_size = hop_end - hop_begin;
    at::Tensor frontier = nodes.narrow(0, hop_begin, frontier_size);
    // With replacement every node draws `fanout` edges whatever its degree: a huge fanout is
    // refused before anything is allocated (and before the counts could overflow).
    TORCH_CHECK_VALUE(!replace || fanouts[hop] < 0 || frontier_size == 0 ||
                          fanouts[hop] <= kMaxOutputEntries / frontier_size,
                      "refusing to produce ", frontier_size, " x ", fanouts[hop],
                      " edges sampled with replacement (frontier nodes x fanout): more than the ",
                      kMaxOutputEntries, " entries one call may produce");
    at::Tensor counts = at::empty({frontier_size}, opts);
    count_kernel<<<blocks_for(frontier_size), kThreads, 0, stream>>>(
        indptr.data_ptr<int64_t>(), num_edges, frontier.data_ptr<int64_t>(), frontier_size, fanouts[hop], replace,
        counts.data_ptr<int64_t>(), problems.data_ptr<int>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    at::Tensor inclusive = at::cumsum(counts, 0);
    const int64_t hop_edges = frontier_size ? inclusive[-1].item<int64_t>() : 0;
    TORCH_CHECK_VALUE(hop_edges <= kMaxOutputEntries, "refusing to sample ", hop_edges, " edges at hop ", hop + 1,
                      ": more than the ", kMaxOutputEntries, " entries one call may produce");
    at::Tensor offsets = inclusive - counts;
    at::Tensor src = at::empty({hop_edges}, opts), slot = at::empty({hop_edges}, opts),
               col = at::empty({hop_edges}, opts);
    sample_kernel<idx_t><<<blocks_for(frontier_size), kThreads, 0, stream>>>(
        indptr.data_ptr<int64_t>(), indices_ptr, num_nodes, num_edges, frontier.data_ptr<int64_t>(), frontier_size,
        hop_begin, offsets.data_ptr<int64_t>(), fanouts[hop], replace, static_cast<uint64_t>(seed), hop,
        src.data_ptr<int64_t>(), slot.data_ptr<int64_t>(), col.data_ptr<int64_t>(), problems.data_ptr<int>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    int64_t added = 0;
    if (hop_edges > 0) {
      auto* first = reinterpret_cast<unsigned long long*>(first_edge.data_ptr<int64_t>());
      first_edge_kernel<<<blocks_for(hop_edges), kThreads, 0, stream>>>(src.data_ptr<int64_t>(), hop_edges,
                                                                         local.data_ptr<int64_t>(), first);
      at::Tensor is_new = at::empty({hop_edges}, opts);
      mark_new_kernel<<<blocks_for(hop_edges), kThreads, 0, stream>>>(src.data_ptr<int64_t>(), hop_edges,
                                                                       local.data_ptr<int64_t>(), first,
                                                                       is_new.data_ptr<int64_t>());
      at::Tensor rank = at::cumsum(is_new, 0);
      added = rank[-1].item<int64_t>();
      nodes = at::cat({nodes, at::empty({added}, opts)});
      number_new_kernel<<<blocks_for(hop_edges), kThreads, 0, stream>>>(
          src.data_ptr<int64_t>(), hop_edges, is_new.data_ptr<int64_t>(), rank.data_ptr<int64_t>(), hop_end,
          local.data_ptr<int64_t>(), nodes.data_ptr<int64_t>());
      at::Tensor row = at::empty({hop_edges}, opts);
      to_local_kernel<<<blocks_for(hop_edges), kThreads, 0, stream>>>(src.data_ptr<int64_t>(), hop_edges,
                                                                       local.data_ptr<int64_t>(),
                                                                       row.data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      rows.push_back(row);
      cols.push_back(col);
      slots.push_back(slot);
    }
    num_sampled_edges.push_back(hop_edges);
    num_sampled_nodes.push_back(added);
    hop_begin = hop_end;
    hop_end += added;
  }
  const int flags = problems.item<int>();
  TORCH_CHECK_VALUE(!(flags & kBadRow), "indptr holds a row outside [0, ", num_edges,
                    "] or a decreasing one (indptr[v] > indptr[v + 1])");
  TORCH_CHECK_VALUE(!(flags & kBadId), "indices hold ids out of range for ", num_nodes, " nodes");
  auto join = [&](const std::vector<at::Tensor>& parts) {
    return parts.empty() ? at::empty({0}, opts) : at::cat(parts);
  };
  auto host_tensor = [](const std::vector<int64_t>& values) {
    return at::tensor(values, at::TensorOptions().dtype(at::kLong));
  };
  return {nodes, join(rows), join(cols), join(slots), host_tensor(num_sampled_nodes), host_tensor(num_sampled_edges)};
}

std::vector<at::Tensor> neighbor_sample_cuda(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& seeds,
                                             at::IntArrayRef fanouts, bool replace,
                                             const c10::optional<at::Tensor>& weight, int64_t seed) {
  TORCH_CHECK_VALUE(!weight.has_value(), "weighted neighbour sampling runs on the CPU; sample without weights on CUDA");
  TORCH_CHECK_VALUE(indptr.is_cuda() && indptr.scalar_type() == at::kLong && indptr.is_contiguous(),
                    "indptr must be a contiguous int64 CUDA tensor");
  TORCH_CHECK_VALUE(seeds.is_cuda() && seeds.scalar_type() == at::kLong && seeds.dim() == 1,
                    "seeds must be a 1-D int64 CUDA tensor");
  TORCH_CHECK_VALUE(indices.is_cuda() || indices.is_pinned(),
                    "indices must be in GPU memory or pinned host memory (read zero-copy)");
  TORCH_CHECK_VALUE((indices.scalar_type() == at::kInt || indices.scalar_type() == at::kLong) &&
                        indices.is_contiguous(),
                    "indices must be a contiguous int32/int64 tensor");
  std::vector<int64_t> hops(fanouts.begin(), fanouts.end());
  for (int64_t f : hops) TORCH_CHECK_VALUE(f >= -1 && f != 0, "fanouts must be positive or -1, got ", f);
  c10::cuda::CUDAGuard guard(seeds.device());
  const int64_t num_nodes = indptr.numel() - 1;
  TORCH_CHECK_VALUE(num_nodes >= 0, "indptr must hold at least one entry");
  const int64_t last = indptr[-1].item<int64_t>();
  TORCH_CHECK_VALUE(last == indices.numel(), "indptr ends at ", last, " but there are ", indices.numel(), " indices");
  if (seeds.numel() > 0) {
    const auto [low, high] = at::aminmax(seeds);
    TORCH_CHECK_VALUE(low.item<int64_t>() >= 0 && high.item<int64_t>() < num_nodes, "seeds must lie in [0, ",
                      num_nodes, ")");
  }
  return AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "neighbor_sample_cuda", [&] {
    return sample_impl<index_t>(indptr, indices, seeds, hops, replace, seed);
  });
}

}  // namespace
}  // namespace gnnscale

TORCH_LIBRARY_IMPL(gnnscale, CUDA, m) { m.impl("neighbor_sample", &gnnscale::neighbor_sample_cuda); }
