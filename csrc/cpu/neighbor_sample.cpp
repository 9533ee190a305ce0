// Multi-hop node-wise neighbour sampling on a CSC graph (for each node, the sources of its
// in-edges), the CPU kernel behind gnnscale's NeighborSampler.
//
// Each hop samples the in-neighbours of every frontier node in parallel, each node drawing from
// its own random stream (seed, hop, position), so a sample depends on the seed only. The new
// nodes are then numbered sequentially in order of first appearance, which gives the same node
// and edge order as PyG's samplers: seeds first, then each hop's new nodes.
#include "neighbor_sample.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <vector>

#include "rng.h"

namespace gnnscale {
namespace {

constexpr int64_t kNodesPerTask = 32;
constexpr int64_t kLinearScanLimit = 64;

// Neighbour offsets in [0, degree) chosen for one node, appended to `out` in ascending order.
struct NodeSampler {
  int64_t fanout;
  bool replace;
  const double* weight;  // per CSC slot, or nullptr

  void sample(int64_t begin, int64_t degree, Rng& rng, std::vector<int64_t>& out,
              std::vector<std::pair<double, int64_t>>& scratch) const {
    if (degree == 0) return;
    if (weight != nullptr) return sample_weighted(begin, degree, rng, out, scratch);
    if (fanout < 0 || (!replace && fanout >= degree)) {
      for (int64_t j = 0; j < degree; ++j) out.push_back(j);
      return;
    }
    const size_t first = out.size();
    if (replace) {
      for (int64_t j = 0; j < fanout; ++j) out.push_back(static_cast<int64_t>(rng.below(degree)));
    } else if (fanout <= kLinearScanLimit) {
      // Floyd's algorithm: fanout distinct offsets, each subset equally likely.
      for (int64_t j = degree - fanout; j < degree; ++j) {
        const int64_t t = static_cast<int64_t>(rng.below(j + 1));
        const bool seen = std::find(out.begin() + first, out.end(), t) != out.end();
        out.push_back(seen ? j : t);
      }
    } else {
      std::unordered_set<int64_t> chosen;
      for (int64_t j = degree - fanout; j < degree; ++j) {
        const int64_t t = static_cast<int64_t>(rng.below(j + 1));
        out.push_back(chosen.insert(t).second ? t : (chosen.insert(j), j));
      }
    }
    std::sort(out.begin() + first, out.end());
  }

  // Without replacement: Efraimidis-Spirakis keys log(u) / w, the `fanout` largest win, which
  // draws each next neighbour with probability proportional to its weight. With replacement:
  // independent draws from the cumulative weights. Zero-weight edges are never drawn.
  void sample_weighted(int64_t begin, int64_t degree, Rng& rng, std::vector<int64_t>& out,
                       std::vector<std::pair<double, int64_t>>& scratch) const {
    const size_t first = out.size();
    scratch.clear();
    if (replace && fanout >= 0) {
      double total = 0.0;
      for (int64_t j = 0; j < degree; ++j) {
        total += weight[begin + j];
        scratch.emplace_back(total, j);
      }
      if (total <= 0.0) return;
      // The last slot with weight: where a draw rounding up to `total` belongs.
      int64_t last = degree - 1;
      while (weight[begin + last] <= 0.0) --last;
      for (int64_t k = 0; k < fanout; ++k) {
        // The first slot whose running total exceeds the draw; it always has positive weight.
        const double target = rng.uniform() * total;
        auto it = std::upper_bound(scratch.begin(), scratch.end(), std::make_pair(target, degree));
        out.push_back(it == scratch.end() ? last : it->second);
      }
    } else {
      for (int64_t j = 0; j < degree; ++j) {
        const double w = weight[begin + j];
        if (w > 0.0) scratch.emplace_back(std::log(rng.uniform() + 0x1.0p-60) / w, j);
      }
      const int64_t take = fanout < 0 ? static_cast<int64_t>(scratch.size())
                                      : std::min<int64_t>(fanout, static_cast<int64_t>(scratch.size()));
      std::partial_sort(scratch.begin(), scratch.begin() + take, scratch.end(),
                        [](const auto& a, const auto& b) { return a.first > b.first; });
      for (int64_t k = 0; k < take; ++k) out.push_back(scratch[k].second);
    }
    std::sort(out.begin() + first, out.end());
  }
};

// Global id -> local id for the nodes of the sample being built. Kept per calling thread and
// reset entry by entry after use, so a call costs O(sample), not O(num_nodes).
std::vector<int64_t>& local_id_map(int64_t num_nodes) {
  thread_local std::vector<int64_t> map;
  if (static_cast<int64_t>(map.size()) < num_nodes) map.assign(num_nodes, -1);
  return map;
}

template <typename idx_t>
std::vector<at::Tensor> sample_impl(const at::Tensor& indptr_t, const at::Tensor& indices_t, const at::Tensor& seeds_t,
                                    const std::vector<int64_t>& fanouts, bool replace,
                                    const c10::optional<at::Tensor>& weight_t, int64_t seed) {
  const int64_t num_nodes = indptr_t.numel() - 1;
  const int64_t* indptr = indptr_t.data_ptr<int64_t>();
  const idx_t* indices = indices_t.data_ptr<idx_t>();
  const double* weight = weight_t.has_value() ? weight_t->data_ptr<double>() : nullptr;

  std::vector<int64_t>& local = local_id_map(num_nodes);
  std::vector<int64_t> nodes(seeds_t.data_ptr<int64_t>(), seeds_t.data_ptr<int64_t>() + seeds_t.numel());
  for (size_t i = 0; i < nodes.size(); ++i) local[nodes[i]] = static_cast<int64_t>(i);

  std::vector<int64_t> row, col, slot;
  std::vector<int64_t> num_sampled_nodes{static_cast<int64_t>(nodes.size())}, num_sampled_edges;
  int64_t hop_begin = 0;
  for (size_t hop = 0; hop < fanouts.size(); ++hop) {
    const int64_t hop_end = static_cast<int64_t>(nodes.size());
    const int64_t frontier = hop_end - hop_begin;
    const int64_t tasks = (frontier + kNodesPerTask - 1) / kNodesPerTask;
    // Per task: chosen CSC slots, and how many belong to each of its frontier nodes.
    std::vector<std::vector<int64_t>> task_slots(tasks), task_counts(tasks);
    const NodeSampler sampler{fanouts[hop], replace, weight};
    at::parallel_for(0, tasks, 1, [&](int64_t first, int64_t last) {
      std::vector<int64_t> offsets;
      std::vector<std::pair<double, int64_t>> scratch;
      for (int64_t task = first; task < last; ++task) {
        const int64_t begin = hop_begin + task * kNodesPerTask;
        const int64_t end = std::min(hop_end, begin + kNodesPerTask);
        for (int64_t position = begin; position < end; ++position) {
          const int64_t v = nodes[position];
          Rng rng(static_cast<uint64_t>(seed), hop, static_cast<uint64_t>(position));
          offsets.clear();
          sampler.sample(indptr[v], indptr[v + 1] - indptr[v], rng, offsets, scratch);
          for (int64_t offset : offsets) task_slots[task].push_back(indptr[v] + offset);
          task_counts[task].push_back(static_cast<int64_t>(offsets.size()));
        }
      }
    });
    int64_t hop_edges = 0;
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t begin = hop_begin + task * kNodesPerTask;
      size_t k = 0;
      for (size_t j = 0; j < task_counts[task].size(); ++j) {
        for (int64_t c = 0; c < task_counts[task][j]; ++c, ++k) {
          const int64_t e = task_slots[task][k];
          const int64_t src = indices[e];
          if (local[src] < 0) {
            local[src] = static_cast<int64_t>(nodes.size());
            nodes.push_back(src);
          }
          row.push_back(local[src]);
          col.push_back(begin + static_cast<int64_t>(j));
          slot.push_back(e);
        }
        hop_edges += task_counts[task][j];
      }
    }
    num_sampled_edges.push_back(hop_edges);
    num_sampled_nodes.push_back(static_cast<int64_t>(nodes.size()) - hop_end);
    hop_begin = hop_end;
  }
  for (int64_t v : nodes) local[v] = -1;

  auto to_tensor = [](const std::vector<int64_t>& values) {
    at::Tensor out = at::empty({static_cast<int64_t>(values.size())}, at::kLong);
    std::copy(values.begin(), values.end(), out.data_ptr<int64_t>());
    return out;
  };
  return {to_tensor(nodes), to_tensor(row), to_tensor(col), to_tensor(slot), to_tensor(num_sampled_nodes),
          to_tensor(num_sampled_edges)};
}

}  // namespace

std::vector<at::Tensor> neighbor_sample_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& seeds,
                                            at::IntArrayRef fanouts, bool replace,
                                            const c10::optional<at::Tensor>& weight, int64_t seed) {
  TORCH_CHECK_VALUE(indptr.scalar_type() == at::kLong && indptr.dim() == 1 && indptr.is_contiguous(),
                    "indptr must be a contiguous 1-D int64 tensor");
  TORCH_CHECK_VALUE((indices.scalar_type() == at::kInt || indices.scalar_type() == at::kLong) &&
                        indices.is_contiguous(),
                    "indices must be a contiguous int32/int64 tensor");
  TORCH_CHECK_VALUE(seeds.scalar_type() == at::kLong && seeds.dim() == 1 && seeds.is_contiguous(),
                    "seeds must be a contiguous 1-D int64 tensor");
  if (weight.has_value())
    TORCH_CHECK_VALUE(weight->scalar_type() == at::kDouble && weight->numel() == indices.numel() &&
                          weight->is_contiguous(),
                      "weight must be a contiguous float64 tensor with one value per edge");
  std::vector<int64_t> hops(fanouts.begin(), fanouts.end());
  for (int64_t f : hops) TORCH_CHECK_VALUE(f >= -1, "fanouts must be positive or -1, got ", f);
  return AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "neighbor_sample", [&] {
    return sample_impl<index_t>(indptr, indices, seeds, hops, replace, weight, seed);
  });
}

}  // namespace gnnscale
