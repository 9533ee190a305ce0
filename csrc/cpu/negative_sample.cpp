// Negative sampling for link prediction: alias tables (Vose) for degree-biased node draws, and
// batched tail corruption that can reject pairs that are true edges of the graph.
#include "negative_sample.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "checks.h"
#include "rng.h"

namespace gnnscale {

std::tuple<at::Tensor, at::Tensor> alias_table_cpu(const at::Tensor& weight_in) {
  TORCH_CHECK_VALUE(weight_in.dim() == 1 && weight_in.numel() > 0, "weights must be a non-empty 1-D tensor");
  at::Tensor weight = weight_in.to(at::kDouble).contiguous();
  const int64_t n = weight.numel();
  const double* w = weight.data_ptr<double>();
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK_VALUE(std::isfinite(w[i]) && w[i] >= 0.0, "weights must be finite and non-negative, got ", w[i],
                      " at ", i);
    total += w[i];
  }
  TORCH_CHECK_VALUE(total > 0.0, "weights must not all be zero");
  at::Tensor prob_t = at::empty({n}, at::kDouble);
  at::Tensor alias_t = at::empty({n}, at::kLong);
  double* prob = prob_t.data_ptr<double>();
  int64_t* alias = alias_t.data_ptr<int64_t>();
  std::vector<int64_t> small, large;
  for (int64_t i = 0; i < n; ++i) {
    prob[i] = w[i] * n / total;
    alias[i] = i;
    (prob[i] < 1.0 ? small : large).push_back(i);
  }
  while (!small.empty() && !large.empty()) {
    const int64_t s = small.back(), l = large.back();
    small.pop_back();
    alias[s] = l;
    prob[l] -= 1.0 - prob[s];
    if (prob[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // Leftovers are 1 up to rounding.
  for (int64_t i : small) prob[i] = 1.0;
  for (int64_t i : large) prob[i] = 1.0;
  return {prob_t, alias_t};
}

namespace {

struct NodeDraw {
  int64_t num_nodes;
  const double* prob;  // alias table, or nullptr for uniform draws
  const int64_t* alias;

  int64_t operator()(Rng& rng) const {
    const int64_t j = static_cast<int64_t>(rng.below(num_nodes));
    if (prob == nullptr) return j;
    return rng.uniform() < prob[j] ? j : alias[j];
  }
};

NodeDraw make_draw(int64_t num_nodes, const c10::optional<at::Tensor>& prob, const c10::optional<at::Tensor>& alias) {
  if (!prob.has_value()) return {num_nodes, nullptr, nullptr};
  TORCH_CHECK_VALUE(alias.has_value() && prob->numel() == num_nodes && alias->numel() == num_nodes &&
                        prob->scalar_type() == at::kDouble && alias->scalar_type() == at::kLong &&
                        prob->is_contiguous() && alias->is_contiguous(),
                    "alias table must hold num_nodes contiguous float64 probabilities and int64 aliases");
  return {num_nodes, prob->data_ptr<double>(), alias->data_ptr<int64_t>()};
}

}  // namespace

at::Tensor alias_sample_cpu(const at::Tensor& prob, const at::Tensor& alias, int64_t num_samples, int64_t seed) {
  TORCH_CHECK_VALUE(num_samples >= 0, "num_samples must be non-negative");
  check_output_size("samples", num_samples, 1, sizeof(int64_t));
  const NodeDraw draw = make_draw(prob.numel(), prob, alias);
  at::Tensor out = at::empty({num_samples}, at::kLong);
  int64_t* result = out.data_ptr<int64_t>();
  constexpr int64_t kPerStream = 1024;
  at::parallel_for(0, (num_samples + kPerStream - 1) / kPerStream, 1, [&](int64_t first, int64_t last) {
    for (int64_t block = first; block < last; ++block) {
      Rng rng(static_cast<uint64_t>(seed), 0x51A5, static_cast<uint64_t>(block));
      for (int64_t i = block * kPerStream; i < std::min(num_samples, (block + 1) * kPerStream); ++i)
        result[i] = draw(rng);
    }
  });
  return out;
}

at::Tensor negative_tails_cpu(const at::Tensor& indptr_t, const at::Tensor& indices_t, const at::Tensor& src_t,
                              int64_t num_per_source, const c10::optional<at::Tensor>& prob,
                              const c10::optional<at::Tensor>& alias, bool reject_edges, int64_t max_tries,
                              int64_t seed) {
  check_indptr(indptr_t);
  check_index_tensor(indices_t, "indices");
  TORCH_CHECK_VALUE(src_t.scalar_type() == at::kLong && src_t.dim() == 1 && src_t.is_contiguous(),
                    "sources must be a contiguous 1-D int64 tensor");
  TORCH_CHECK_VALUE(num_per_source >= 0 && max_tries >= 1, "num_per_source >= 0 and max_tries >= 1 required");
  const int64_t num_nodes = indptr_t.numel() - 1, num_edges = indices_t.numel();
  TORCH_CHECK_VALUE(num_nodes > 0, "the graph has no nodes to draw negatives from");
  check_indptr_ends(indptr_t, num_edges);
  const NodeDraw draw = make_draw(num_nodes, prob, alias);
  const int64_t m = src_t.numel();
  check_output_size("negatives (sources x num_per_source)", m, num_per_source, sizeof(int64_t));
  at::Tensor out = at::empty({m, num_per_source}, at::kLong);
  const int64_t* indptr = indptr_t.data_ptr<int64_t>();
  const int64_t* src = src_t.data_ptr<int64_t>();
  int64_t* result = out.data_ptr<int64_t>();
  ProblemLog problems;
  AT_DISPATCH_INDEX_TYPES(indices_t.scalar_type(), "negative_tails", [&] {
    const index_t* indices = indices_t.data_ptr<index_t>();
    at::parallel_for(0, m, 256, [&](int64_t first, int64_t last) {
      for (int64_t i = first; i < last; ++i) {
        Rng rng(static_cast<uint64_t>(seed), 0x7A11, static_cast<uint64_t>(i));
        const int64_t u = src[i];
        if (C10_UNLIKELY(!in_range(u, num_nodes))) {
          problems.bad_id("sources hold", i, u, num_nodes, "nodes");
          continue;
        }
        if (C10_UNLIKELY(!row_in_bounds(indptr[u], indptr[u + 1], num_edges))) {
          problems.bad_row(u, indptr[u], indptr[u + 1], num_edges);
          continue;
        }
        const index_t* row = indices + indptr[u];
        const index_t* row_end = indices + indptr[u + 1];
        for (int64_t k = 0; k < num_per_source; ++k) {
          int64_t v = draw(rng);
          // Redraw while (u, v) is a true edge or a self-pair; after max_tries keep the last draw.
          for (int64_t t = 1;
               reject_edges && t < max_tries && (v == u || std::binary_search(row, row_end, static_cast<index_t>(v)));
               ++t)
            v = draw(rng);
          result[i * num_per_source + k] = v;
        }
      }
    });
  });
  problems.raise_if_any();
  return out;
}

}  // namespace gnnscale
