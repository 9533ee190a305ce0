// Kernels of the graph-transformer token builder (LargeGT):
//
// hop_token_sample: for each node, up to `num_samples` distinct other nodes drawn uniformly from
// its sampled 1- and 2-hop neighbourhood. The neighbourhood is first bounded by per-hop fanouts
// (as the neighbour sampler bounds it, so hubs cost no more than anyone else), then the distinct
// candidates are subsampled. Each node draws from its own random stream keyed by its id, so the
// tokens of a node do not depend on the chunking, the thread count or the other nodes.
//
// gcn_propagate: one product with the GCN-normalised adjacency with self-loops,
// out = D^-1/2 (A + I) D^-1/2 x, the normalisation applied on the fly from the degrees so
// neither A + I nor its edge values are ever materialised.
#include "tokens.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "checks.h"
#include "choose.h"
#include "parallel.h"
#include "prefetch.h"
#include "rng.h"

namespace gnnscale {
namespace {

constexpr uint64_t kTokenStream = 0x70c3e5;
constexpr int64_t kPrefetchDistance = 4;

template <typename Index>
void sample_tokens(const int64_t* indptr, const Index* indices, const int64_t* nodes, int64_t num_nodes,
                   int64_t num_samples, const std::vector<int64_t>& fanouts, int64_t seed, int64_t* out) {
  at::parallel_for(0, num_nodes, 64, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> frontier, next, candidates, offsets;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t node = nodes[i];
      Rng rng(static_cast<uint64_t>(seed), kTokenStream, static_cast<uint64_t>(node));
      frontier.assign(1, node);
      candidates.clear();
      for (const int64_t fanout : fanouts) {
        next.clear();
        for (const int64_t u : frontier) {
          const int64_t row = indptr[u], degree = indptr[u + 1] - row;
          offsets.clear();
          if (fanout < 0 || fanout >= degree) {
            for (int64_t j = 0; j < degree; ++j) offsets.push_back(j);
          } else {
            choose_distinct(degree, fanout, rng, offsets);
          }
          for (const int64_t j : offsets) next.push_back(static_cast<int64_t>(indices[row + j]));
        }
        std::sort(next.begin(), next.end());
        next.erase(std::unique(next.begin(), next.end()), next.end());
        candidates.insert(candidates.end(), next.begin(), next.end());
        frontier.swap(next);
      }
      std::sort(candidates.begin(), candidates.end());
      candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
      candidates.erase(std::remove(candidates.begin(), candidates.end(), node), candidates.end());

      int64_t* row_out = out + i * num_samples;
      const int64_t available = static_cast<int64_t>(candidates.size());
      if (available <= num_samples) {
        std::copy(candidates.begin(), candidates.end(), row_out);
        std::fill(row_out + available, row_out + num_samples, -1);
      } else {
        offsets.clear();
        choose_distinct(available, num_samples, rng, offsets);
        for (int64_t k = 0; k < num_samples; ++k) row_out[k] = candidates[offsets[k]];
      }
    }
  });
}

template <typename Index>
void propagate(const int64_t* indptr, const Index* indices, const float* scale, const float* x, int64_t x_stride,
               int64_t num_rows, int64_t width, float* out, int64_t out_stride) {
  for_each_row_range_balanced(indptr, num_rows, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(width);
    const int64_t last_edge = indptr[end];
    const int64_t row_bytes = width * static_cast<int64_t>(sizeof(float));
    for (int64_t i = begin; i < end; ++i) {
      const float self = scale[i];
      const float* xi = x + i * x_stride;
      for (int64_t f = 0; f < width; ++f) acc[f] = self * xi[f];
      for (int64_t e = indptr[i]; e < indptr[i + 1]; ++e) {
        // Neighbour rows are random reads: start the ones a few edges ahead (across row ends).
        if (e + kPrefetchDistance < last_edge)
          prefetch_row(reinterpret_cast<const char*>(x + static_cast<int64_t>(indices[e + kPrefetchDistance]) * x_stride),
                       row_bytes);
        const int64_t j = static_cast<int64_t>(indices[e]);
        const float s = scale[j];
        const float* xj = x + j * x_stride;
        for (int64_t f = 0; f < width; ++f) acc[f] += s * xj[f];
      }
      float* oi = out + i * out_stride;
      for (int64_t f = 0; f < width; ++f) oi[f] = self * acc[f];
    }
  });
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

}  // namespace

at::Tensor hop_token_sample_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& nodes,
                                int64_t num_samples, at::IntArrayRef fanouts, int64_t seed) {
  check_indptr(indptr);
  check_index_tensor(indices, "indices");
  TORCH_CHECK_VALUE(nodes.scalar_type() == at::kLong && nodes.is_contiguous() && nodes.dim() == 1,
                    "nodes must be a contiguous 1-D int64 tensor");
  TORCH_CHECK_VALUE(num_samples >= 0, "num_samples must be non-negative");
  TORCH_CHECK_VALUE(!fanouts.empty(), "fanouts must name at least one hop");
  const int64_t n = nodes.numel();
  at::Tensor out = at::empty({n, num_samples}, nodes.options());
  if (n == 0 || num_samples == 0) return out;
  const std::vector<int64_t> hops(fanouts.begin(), fanouts.end());
  AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "hop_token_sample", [&] {
    sample_tokens<index_t>(indptr.data_ptr<int64_t>(), indices.data_ptr<index_t>(), nodes.data_ptr<int64_t>(), n,
                           num_samples, hops, seed, out.data_ptr<int64_t>());
  });
  return out;
}

void gcn_propagate_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& inv_sqrt_degree,
                       const at::Tensor& x, at::Tensor& out) {
  check_indptr(indptr);
  check_index_tensor(indices, "indices");
  const int64_t n = indptr.numel() - 1;
  // Rows may be strided (a column block of a wider table) but each row must be contiguous.
  TORCH_CHECK_VALUE(x.scalar_type() == at::kFloat && x.dim() == 2 && x.size(0) == n && x.stride(1) == 1,
                    "x must be a float32 [num_nodes, width] tensor with contiguous rows");
  TORCH_CHECK_VALUE(out.scalar_type() == at::kFloat && out.dim() == 2 && out.sizes() == x.sizes() &&
                        out.stride(1) == 1,
                    "out must be a float32 tensor shaped like x with contiguous rows");
  TORCH_CHECK_VALUE(inv_sqrt_degree.scalar_type() == at::kFloat && inv_sqrt_degree.numel() == n,
                    "inv_sqrt_degree must hold one float32 per node");
  TORCH_CHECK_VALUE(!overlaps(x, out), "out must not overlap x");
  AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "gcn_propagate", [&] {
    propagate<index_t>(indptr.data_ptr<int64_t>(), indices.data_ptr<index_t>(),
                       inv_sqrt_degree.contiguous().data_ptr<float>(), x.data_ptr<float>(), x.stride(0), n,
                       x.size(1), out.data_ptr<float>(), out.stride(0));
  });
}

}  // namespace gnnscale
