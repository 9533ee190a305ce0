// Kernels of the graph-transformer token builder (LargeGT):
//
// hop_token_sample: for each node, up to `num_samples` distinct other nodes drawn uniformly from
// its sampled 1- and 2-hop neighbourhood. The neighbourhood is first bounded by per-hop fanouts
// (as the neighbour sampler bounds it, so hubs cost no more than anyone else), then the distinct
// candidates are subsampled. Each node draws from its own random stream keyed by its id, so the
// tokens of a node do not depend on the chunking, the thread count or the other nodes.
#include "tokens.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "checks.h"
#include "choose.h"
#include "rng.h"

namespace gnnscale {
namespace {

constexpr uint64_t kTokenStream = 0x70c3e5;

// The graph the tokens are drawn from: rows and ids are checked as they are read (a bad one is
// skipped and raised after the parallel loop).
template <typename Index>
struct TokenGraph {
  const int64_t* indptr;
  const Index* indices;
  int64_t num_nodes, num_edges;
};

template <typename Index>
void sample_tokens(const TokenGraph<Index>& graph, const int64_t* nodes, int64_t num_queries, int64_t num_samples,
                   const std::vector<int64_t>& fanouts, int64_t seed, int64_t* out) {
  const int64_t* indptr = graph.indptr;
  ProblemLog problems;
  at::parallel_for(0, num_queries, 64, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> frontier, next, candidates, offsets;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t node = nodes[i];
      Rng rng(static_cast<uint64_t>(seed), kTokenStream, static_cast<uint64_t>(node));
      frontier.assign(1, node);
      candidates.clear();
      for (const int64_t fanout : fanouts) {
        next.clear();
        for (const int64_t u : frontier) {
          const int64_t row = indptr[u], row_end = indptr[u + 1], degree = row_end - row;
          if (C10_UNLIKELY(!row_in_bounds(row, row_end, graph.num_edges))) {
            problems.bad_row(u, row, row_end, graph.num_edges);
            continue;
          }
          offsets.clear();
          if (fanout < 0 || fanout >= degree) {
            for (int64_t j = 0; j < degree; ++j) offsets.push_back(j);
          } else {
            choose_distinct(degree, fanout, rng, offsets);
          }
          for (const int64_t j : offsets) {
            const int64_t v = static_cast<int64_t>(graph.indices[row + j]);
            if (C10_LIKELY(in_range(v, graph.num_nodes))) next.push_back(v);
            else problems.bad_id("indices hold", row + j, v, graph.num_nodes, "nodes");
          }
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
  problems.raise_if_any();
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
  check_indptr_ends(indptr, indices.numel());
  const int64_t num_nodes = indptr.numel() - 1;
  const int64_t n = nodes.numel();
  const int64_t* node_ids = nodes.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    TORCH_CHECK_VALUE(in_range(node_ids[i], num_nodes), "nodes hold ", node_ids[i], " at position ", i,
                      ", out of range for ", num_nodes, " nodes");
  check_output_size("token nodes (nodes x num_samples)", n, num_samples, sizeof(int64_t));
  at::Tensor out = at::empty({n, num_samples}, nodes.options());
  if (n == 0 || num_samples == 0) return out;
  const std::vector<int64_t> hops(fanouts.begin(), fanouts.end());
  AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "hop_token_sample", [&] {
    const TokenGraph<index_t> graph{indptr.data_ptr<int64_t>(), indices.data_ptr<index_t>(), num_nodes,
                                    indices.numel()};
    sample_tokens<index_t>(graph, node_ids, n, num_samples, hops, seed, out.data_ptr<int64_t>());
  });
  return out;
}

}  // namespace gnnscale
