// Random walks for node embedding: DeepWalk (uniform or edge-weighted first-order steps) and
// node2vec's second-order p/q walks by rejection sampling, which needs no per-edge tables: a
// candidate drawn from the first-order distribution is accepted with probability
// bias(candidate) / max_bias, where bias is 1/p for a step back, 1 for a neighbour of the
// previous node (found by binary search in its sorted row) and 1/q otherwise.
#include "random_walk.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "checks.h"
#include "rng.h"

namespace gnnscale {
namespace {

constexpr uint64_t kWalkStream = 0x57a1c;

template <typename Index>
struct Walker {
  const int64_t* indptr;
  const Index* indices;
  int64_t num_nodes, num_edges;
  const double* cumulative;  // inclusive prefix sum of edge weights, or nullptr when unweighted
  double inverse_p, inverse_q, max_bias;
  bool second_order;

  // A first-order step from `node`: uniform, or proportional to edge weight.
  int64_t first_order(int64_t node, Rng& rng) const {
    const int64_t begin = indptr[node], end = indptr[node + 1];
    if (cumulative == nullptr) return begin + static_cast<int64_t>(rng.below(end - begin));
    const double base = begin == 0 ? 0.0 : cumulative[begin - 1];
    const double target = base + rng.uniform() * (cumulative[end - 1] - base);
    const double* slot = std::upper_bound(cumulative + begin, cumulative + end, target);
    return std::min<int64_t>(slot - cumulative, end - 1);
  }

  bool adjacent(int64_t from, int64_t to) const {
    const Index* row = indices + indptr[from];
    const Index* row_end = indices + indptr[from + 1];
    return std::binary_search(row, row_end, static_cast<Index>(to));
  }

  // The slot of the next step from `current` (whose row, and the row of `previous`, are sound and
  // not empty). A candidate is only compared, never followed, so it needs no check here.
  int64_t step(int64_t previous, int64_t current, Rng& rng) const {
    if (!second_order || previous < 0) return first_order(current, rng);
    while (true) {
      const int64_t slot = first_order(current, rng);
      const int64_t candidate = indices[slot];
      double bias = inverse_q;
      if (candidate == previous) {
        bias = inverse_p;
      } else if (adjacent(previous, candidate)) {
        bias = 1.0;
      }
      if (rng.uniform() * max_bias < bias) return slot;
    }
  }
};

// With kCheckReads, every row a walk leaves and every node it steps to is checked as it is read;
// a walk that meets a bad one stops there, and the problem is raised once all walks are done.
// Without, the CSR is known sound: a step is two dependent reads, mostly from cache, and the checks
// would add a tenth to it.
template <bool kCheckReads, typename Index>
void walk_all(const Walker<Index>& walker, const int64_t* starts, int64_t num_walks, int64_t length, int64_t seed,
              int64_t* out) {
  ProblemLog problems;
  at::parallel_for(0, num_walks, 64, [&](int64_t begin, int64_t end) {
    FirstBadRead bad;
    for (int64_t w = begin; w < end; ++w) {
      Rng rng(seed, kWalkStream, w);
      int64_t* walk = out + w * length;
      int64_t previous = -1, current = starts[w];
      walk[0] = current;
      int64_t i = 1;
      for (; i < length; ++i) {
        const int64_t row = walker.indptr[current], row_end = walker.indptr[current + 1];
        if (kCheckReads && C10_UNLIKELY(!row_in_bounds(row, row_end, walker.num_edges))) {
          bad.row(current, row, row_end);
          break;
        }
        if (row == row_end) break;  // dead end (directed graphs)
        const int64_t slot = walker.step(previous, current, rng);
        const int64_t next = static_cast<int64_t>(walker.indices[slot]);
        if (kCheckReads && C10_UNLIKELY(!in_range(next, walker.num_nodes))) {
          bad.id(slot, next);
          break;
        }
        previous = current;
        current = next;
        walk[i] = current;
      }
      std::fill(walk + i, walk + length, -1);
    }
    problems.take(bad, "indices hold", walker.num_nodes, "nodes", walker.num_edges);
  });
  problems.raise_if_any();
}

}  // namespace

at::Tensor random_walk_cpu(const at::Tensor& indptr_in, const at::Tensor& indices, const at::Tensor& starts_in,
                           int64_t length, const c10::optional<at::Tensor>& cumulative_weight, double p, double q,
                           int64_t seed, bool sound_csr) {
  TORCH_CHECK_VALUE(indptr_in.dim() == 1 && indptr_in.numel() >= 1, "indptr must be a non-empty 1-D tensor");
  TORCH_CHECK_VALUE(indices.dim() == 1 && indices.is_contiguous(), "indices must be a contiguous 1-D tensor");
  TORCH_CHECK_VALUE(indices.scalar_type() == at::kLong || indices.scalar_type() == at::kInt,
                    "indices must be int32 or int64");
  TORCH_CHECK_VALUE(length >= 1, "walk length must be at least 1, got ", length);
  TORCH_CHECK_VALUE(p > 0 && q > 0, "p and q must be positive, got p=", p, " q=", q);
  const at::Tensor indptr = indptr_in.to(at::kLong).contiguous();
  const at::Tensor starts = starts_in.to(at::kLong).contiguous();
  const int64_t num_nodes = indptr.numel() - 1;
  check_indptr_ends(indptr, indices.numel());
  if (starts.numel() > 0) {
    TORCH_CHECK_VALUE(starts.min().item<int64_t>() >= 0 && starts.max().item<int64_t>() < num_nodes,
                      "start nodes must lie in [0, ", num_nodes, ")");
  }
  check_output_size("walk steps (walks x length)", starts.numel(), length, sizeof(int64_t));
  at::Tensor cumulative;
  if (cumulative_weight.has_value()) {
    cumulative = cumulative_weight->to(at::kDouble).contiguous();
    TORCH_CHECK_VALUE(cumulative.numel() == indices.numel(), "one cumulative weight per edge is needed, got ",
                      cumulative.numel(), " for ", indices.numel(), " edges");
  }
  at::Tensor out = at::empty({starts.numel(), length}, at::kLong);
  const bool second_order = p != 1.0 || q != 1.0;
  const double inverse_p = 1.0 / p, inverse_q = 1.0 / q;
  const double max_bias = std::max({inverse_p, 1.0, inverse_q});
  AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "random_walk", [&] {
    Walker<index_t> walker{indptr.data_ptr<int64_t>(), indices.data_ptr<index_t>(), num_nodes, indices.numel(),
                           cumulative.defined() ? cumulative.data_ptr<double>() : nullptr,
                           inverse_p, inverse_q, max_bias, second_order};
    if (sound_csr) {
      walk_all<false>(walker, starts.data_ptr<int64_t>(), starts.numel(), length, seed, out.data_ptr<int64_t>());
    } else {
      walk_all<true>(walker, starts.data_ptr<int64_t>(), starts.numel(), length, seed, out.data_ptr<int64_t>());
    }
  });
  return out;
}

}  // namespace gnnscale
