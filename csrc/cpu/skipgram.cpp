// Skip-gram with negative sampling on the CPU: positive pairs from random walks (every pair within
// `window` steps of each other), grouped by their centre node and shuffled group-wise in
// cache-sized blocks, then trained by lock-free multi-threaded SGD (Hogwild, as word2vec and LINE
// do): threads update shared rows without locks, which loses a negligible share of updates on
// sparse, large tables and scales with cores.
//
// A group (the contexts around one centre) shares its target row and one draw of negatives, so
// its update is a small dense product, [contexts x dim] by [dim x (1 + negatives)], with every row
// read once per group rather than once per pair (Ji et al., "Parallelizing Word2Vec in Shared and
// Distributed Memory", 2016).
#include "skipgram.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "checks.h"
#include "rng.h"
#include "vector_clones.h"

namespace gnnscale {
namespace {

constexpr uint64_t kShuffleStream = 0x5b0ff1e;
constexpr uint64_t kNegativeStream = 0x4e9a7;
constexpr int64_t kShuffleBlock = 1 << 17;  // groups per shuffled block: about 16 MiB of pairs
constexpr int64_t kTrainChunk = 4096;       // pairs per scheduling unit (one RNG stream each)
constexpr int64_t kMaxGroup = 64;           // longer runs of one target train as several groups

constexpr uint64_t kWindowStream = 0x3a11d0;

// The window around position i: `window`, or with `shrink` a uniform draw from [1, window] per
// position (word2vec's dynamic window, which weights near contexts more and halves the pairs).
struct WindowDraw {
  int64_t window;
  bool shrink;
  int64_t seed;
  int64_t at(int64_t walk, int64_t position, int64_t length) const {
    if (!shrink) return window;
    Rng rng(seed, kWindowStream, walk * length + position);
    return 1 + static_cast<int64_t>(rng.below(window));
  }
};

constexpr uint64_t kSubsampleStream = 0x5ab5a;

// Word2vec's subsampling: node v stays in a walk with probability prob[v] (one per node).
struct KeepProbability {
  const double* prob;  // nullptr: every node stays
  int64_t num_nodes;
  ProblemLog* problems;  // nodes of a walk that prob does not cover
};

// The walk with frequent nodes dropped, written to `kept`; returns how many stayed. -1 padding
// ends the walk.
int64_t subsample(const int64_t* walk, int64_t w, int64_t length, const KeepProbability& keep, int64_t seed,
                  std::vector<int64_t>& kept) {
  kept.clear();
  Rng rng(seed, kSubsampleStream, w);
  for (int64_t i = 0; i < length && walk[i] >= 0; ++i) {
    if (keep.prob != nullptr && C10_UNLIKELY(!in_range(walk[i], keep.num_nodes))) {
      keep.problems->bad_id("walks hold", w * length + i, walk[i], keep.num_nodes, "nodes of keep_prob");
      continue;
    }
    if (keep.prob == nullptr || rng.uniform() < keep.prob[walk[i]]) kept.push_back(walk[i]);
  }
  return static_cast<int64_t>(kept.size());
}

int64_t pairs_in_walk(int64_t valid, int64_t w, int64_t length, const WindowDraw& windows) {
  int64_t count = 0;
  for (int64_t i = 0; i < valid; ++i) {
    const int64_t reach = windows.at(w, i, length);
    count += std::min(reach, i) + std::min(reach, valid - 1 - i);
  }
  return count;
}

// sigmoid and log-sigmoid by table lookup, as word2vec does: two transcendental calls per
// dot product would otherwise cost as much as the 128-wide dot product itself.
constexpr float kMaxLogit = 8.f;
constexpr int kTableSize = 4096;

struct SigmoidTable {
  float sigmoid[kTableSize + 1];
  float log_sigmoid[kTableSize + 1];
  SigmoidTable() {
    for (int i = 0; i <= kTableSize; ++i) {
      const double x = (2.0 * i / kTableSize - 1.0) * kMaxLogit;
      sigmoid[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)));
      log_sigmoid[i] = static_cast<float>(-std::log1p(std::exp(-x)));
    }
  }
  static int slot(float x) {
    const float clamped = std::min(kMaxLogit, std::max(-kMaxLogit, x));
    return static_cast<int>((clamped + kMaxLogit) * (kTableSize / (2.f * kMaxLogit)) + 0.5f);
  }
};

const SigmoidTable& sigmoid_table() {
  static const SigmoidTable table;
  return table;
}

struct SgnsTables {
  const double* neg_prob;  // alias table of the negative distribution
  const int64_t* neg_alias;
  const SigmoidTable* sigmoid;
  int64_t num_nodes, dim, negatives, share_negatives;
};

// Per-thread scratch for one group: its output rows (target, then negatives), their labels, and
// the updates of the input and output rows, all computed from the rows as they were before.
struct GroupScratch {
  std::vector<int64_t> outputs;
  std::vector<float> label, coefficient, input_update, output_update;
  GroupScratch(int64_t negatives, int64_t dim)
      : outputs(negatives + 1), label(negatives + 1), coefficient(kMaxGroup * (negatives + 1)),
        input_update(kMaxGroup * dim), output_update((negatives + 1) * dim) {}
};

// SGD over `count` pairs, taken as runs of consecutive pairs with one target; returns their summed
// loss. Within a run every source row meets the target and the same negatives, and all rows are
// updated once at the end of the run.
GNNSCALE_VECTOR_CLONES double train_chunk(const SgnsTables& t, float* vertex, float* context, const int64_t* pair,
                                          int64_t count, float lr_begin, float lr_step, Rng& rng,
                                          GroupScratch& scratch) {
  const int64_t dim = t.dim, outputs = t.negatives + 1;
  const SigmoidTable& table = *t.sigmoid;
  double loss = 0.0;
  int64_t group_index = 0;
  for (int64_t first = 0; first < count; ++group_index) {
    const int64_t target = pair[2 * first + 1];
    int64_t last = first + 1;
    while (last < count && last - first < kMaxGroup && pair[2 * last + 1] == target) ++last;
    const int64_t size = last - first;
    if (group_index % t.share_negatives == 0) {
      for (int64_t k = 1; k < outputs; ++k) {
        const int64_t node = static_cast<int64_t>(rng.below(t.num_nodes));
        scratch.outputs[k] = rng.uniform() < t.neg_prob[node] ? node : t.neg_alias[node];
      }
    }
    scratch.outputs[0] = target;
    // A negative that is the target itself teaches nothing consistent: it is left out.
    for (int64_t k = 0; k < outputs; ++k) scratch.label[k] = k == 0 ? 1.f : (scratch.outputs[k] == target ? -1.f : 0.f);
    const float lr = lr_begin + lr_step * static_cast<float>(first);
    for (int64_t i = 0; i < size; ++i) {
      const float* u = vertex + pair[2 * (first + i)] * dim;
      for (int64_t k = 0; k < outputs; ++k) {
        float& coefficient = scratch.coefficient[i * outputs + k];
        if (scratch.label[k] < 0) {
          coefficient = 0.f;
          continue;
        }
        const float* v = context + scratch.outputs[k] * dim;
        float dot = 0.f;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < dim; ++d) dot += u[d] * v[d];
        const int at = SigmoidTable::slot(dot);
        // log sigmoid(-x) is the mirrored slot of log sigmoid(x).
        loss -= k == 0 ? table.log_sigmoid[at] : table.log_sigmoid[kTableSize - at];
        coefficient = (scratch.label[k] - table.sigmoid[at]) * lr;
      }
    }
    // input_update[i] = sum_k c[i, k] v_k ; output_update[k] = sum_i c[i, k] u_i
    std::fill(scratch.output_update.begin(), scratch.output_update.end(), 0.f);
    for (int64_t i = 0; i < size; ++i) {
      const float* u = vertex + pair[2 * (first + i)] * dim;
      float* du = scratch.input_update.data() + i * dim;
      std::fill(du, du + dim, 0.f);
      for (int64_t k = 0; k < outputs; ++k) {
        const float c = scratch.coefficient[i * outputs + k];
        if (c == 0.f) continue;
        const float* v = context + scratch.outputs[k] * dim;
        float* dv = scratch.output_update.data() + k * dim;
#pragma omp simd
        for (int64_t d = 0; d < dim; ++d) {
          du[d] += c * v[d];
          dv[d] += c * u[d];
        }
      }
    }
    for (int64_t i = 0; i < size; ++i) {
      float* u = vertex + pair[2 * (first + i)] * dim;
      const float* du = scratch.input_update.data() + i * dim;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) u[d] += du[d];
    }
    for (int64_t k = 0; k < outputs; ++k) {
      if (scratch.label[k] < 0) continue;
      float* v = context + scratch.outputs[k] * dim;
      const float* dv = scratch.output_update.data() + k * dim;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) v[d] += dv[d];
    }
    first = last;
  }
  return loss;
}

// The aliases of the negative table name nodes, whose rows training writes: checked before any
// row is touched (O(nodes), against the O(pairs x dim) of training).
void check_aliases(const int64_t* alias, int64_t num_nodes) {
  ProblemLog problems;
  at::parallel_for(0, num_nodes, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v)
      if (C10_UNLIKELY(!in_range(alias[v], num_nodes)))
        problems.bad_id("the negative table's aliases hold", v, alias[v], num_nodes, "nodes");
  });
  problems.raise_if_any();
}

}  // namespace

at::Tensor walk_pairs_cpu(const at::Tensor& walks_in, int64_t window, bool shrink_window,
                          const c10::optional<at::Tensor>& keep_prob, int64_t seed) {
  TORCH_CHECK_VALUE(walks_in.dim() == 2, "walks must be a 2-D tensor [num_walks, length]");
  TORCH_CHECK_VALUE(window >= 1, "window must be at least 1, got ", window);
  const at::Tensor walks = walks_in.to(at::kLong).contiguous();
  const int64_t num_walks = walks.size(0), length = walks.size(1);
  const int64_t* data = walks.data_ptr<int64_t>();
  const WindowDraw windows{window, shrink_window, seed};
  at::Tensor keep_t;
  if (keep_prob.has_value()) keep_t = keep_prob->to(at::kDouble).contiguous();
  ProblemLog problems;
  const KeepProbability keep{keep_t.defined() ? keep_t.data_ptr<double>() : nullptr,
                             keep_t.defined() ? keep_t.numel() : 0, &problems};
  // offset[w]: walk w's first pair; first_group[w]: its first group (one per kept position).
  std::vector<int64_t> offset(num_walks + 1, 0), first_group(num_walks + 1, 0);
  at::parallel_for(0, num_walks, 256, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> kept;
    for (int64_t w = begin; w < end; ++w) {
      const int64_t valid = subsample(data + w * length, w, length, keep, seed, kept);
      offset[w + 1] = pairs_in_walk(valid, w, length, windows);
      first_group[w + 1] = valid;
    }
  });
  for (int64_t w = 0; w < num_walks; ++w) {
    offset[w + 1] += offset[w];
    first_group[w + 1] += first_group[w];
  }
  problems.raise_if_any();
  const int64_t total = offset[num_walks];
  check_output_size("pairs", total, 2, 2 * sizeof(int64_t));  // in walk order, then shuffled
  // Pass 1 writes each walk's groups in walk order: for the centre at kept position i, one pair
  // (context, centre) per context within its window. group_start[g] is where group g begins.
  const int64_t num_groups = first_group[num_walks];
  std::vector<int64_t> group_start(num_groups + 1, total);
  at::Tensor ordered = at::empty({total, 2}, at::kLong);
  int64_t* in_order = ordered.data_ptr<int64_t>();
  at::parallel_for(0, num_walks, 256, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> kept;
    for (int64_t w = begin; w < end; ++w) {
      const int64_t valid = subsample(data + w * length, w, length, keep, seed, kept);
      const int64_t* walk = kept.data();
      int64_t position = offset[w];
      for (int64_t i = 0; i < valid; ++i) {
        group_start[first_group[w] + i] = position;
        const int64_t reach = windows.at(w, i, length);
        for (int64_t j = std::max<int64_t>(0, i - reach); j < valid && j <= i + reach; ++j) {
          if (j == i) continue;
          in_order[2 * position] = walk[j];
          in_order[2 * position + 1] = walk[i];
          ++position;
        }
      }
    }
  });
  // Pass 2 shuffles whole groups within blocks of consecutive groups: neighbouring groups of one
  // walk would otherwise update the same rows back to back. A block's pairs stay in its range.
  at::Tensor pairs = at::empty({total, 2}, at::kLong);
  int64_t* out = pairs.data_ptr<int64_t>();
  const int64_t blocks = (num_groups + kShuffleBlock - 1) / kShuffleBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    std::vector<int64_t> order;
    for (int64_t b = first; b < last; ++b) {
      const int64_t g0 = b * kShuffleBlock, g1 = std::min(num_groups, g0 + kShuffleBlock);
      order.resize(g1 - g0);
      for (int64_t g = g0; g < g1; ++g) order[g - g0] = g;
      Rng rng(seed, kShuffleStream, b);
      for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i) {
        std::swap(order[i], order[rng.below(i + 1)]);
      }
      int64_t position = group_start[g0];
      for (const int64_t g : order) {
        const int64_t size = group_start[g + 1] - group_start[g];
        std::copy(in_order + 2 * group_start[g], in_order + 2 * (group_start[g] + size), out + 2 * position);
        position += size;
      }
    }
  });
  return pairs;
}

double sgns_train_cpu(at::Tensor& vertex, at::Tensor& context, const at::Tensor& pairs_in,
                      const at::Tensor& neg_prob_in, const at::Tensor& neg_alias_in, int64_t negatives,
                      double lr_start, double lr_end, int64_t share_negatives, int64_t seed) {
  TORCH_CHECK_VALUE(vertex.scalar_type() == at::kFloat && context.scalar_type() == at::kFloat,
                    "embeddings must be float32");
  TORCH_CHECK_VALUE(vertex.dim() == 2 && vertex.is_contiguous() && context.dim() == 2 && context.is_contiguous(),
                    "embeddings must be contiguous 2-D tensors");
  TORCH_CHECK_VALUE(vertex.sizes() == context.sizes(), "vertex and context embeddings must have the same shape");
  TORCH_CHECK_VALUE(pairs_in.dim() == 2 && pairs_in.size(1) == 2, "pairs must have shape [num_pairs, 2]");
  TORCH_CHECK_VALUE(negatives >= 0 && negatives < kMaxOutputEntries / kMaxGroup,
                    "negatives must lie in [0, ", kMaxOutputEntries / kMaxGroup, "), got ", negatives);
  TORCH_CHECK_VALUE(share_negatives >= 1, "share_negatives must be at least 1");
  const int64_t num_nodes = vertex.size(0), dim = vertex.size(1);
  check_output_size("scratch floats per thread (64 pairs x (negatives + 1) x dim)", kMaxGroup * (negatives + 1), dim,
                    sizeof(float));
  TORCH_CHECK_VALUE(neg_prob_in.numel() == num_nodes && neg_alias_in.numel() == num_nodes,
                    "the negative alias table must have one entry per node");
  const at::Tensor pairs = pairs_in.to(at::kLong).contiguous();
  const int64_t num_pairs = pairs.size(0);
  if (num_pairs == 0) return 0.0;
  TORCH_CHECK_VALUE(pairs.min().item<int64_t>() >= 0 && pairs.max().item<int64_t>() < num_nodes,
                    "pair ids must lie in [0, ", num_nodes, ")");
  const at::Tensor neg_prob = neg_prob_in.to(at::kDouble).contiguous();
  const at::Tensor neg_alias = neg_alias_in.to(at::kLong).contiguous();
  const double* prob = neg_prob.data_ptr<double>();
  const int64_t* alias = neg_alias.data_ptr<int64_t>();
  check_aliases(alias, num_nodes);
  const int64_t* pair = pairs.data_ptr<int64_t>();
  float* vertex_data = vertex.data_ptr<float>();
  float* context_data = context.data_ptr<float>();
  const int64_t chunks = (num_pairs + kTrainChunk - 1) / kTrainChunk;
  std::vector<double> chunk_loss(chunks, 0.0);
  const SigmoidTable& table = sigmoid_table();

  const SgnsTables tables{prob, alias, &table, num_nodes, dim, negatives, share_negatives};
  at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
    GroupScratch scratch(negatives, dim);
    for (int64_t c = first; c < last; ++c) {
      const int64_t begin = c * kTrainChunk, end = std::min(num_pairs, begin + kTrainChunk);
      const float lr_begin = static_cast<float>(lr_start + (lr_end - lr_start) * static_cast<double>(begin) / num_pairs);
      const float lr_step = static_cast<float>((lr_end - lr_start) / num_pairs);
      Rng rng(seed, kNegativeStream, c);
      chunk_loss[c] = train_chunk(tables, vertex_data, context_data, pair + 2 * begin, end - begin, lr_begin,
                                  lr_step, rng, scratch);
    }
  });
  double total = 0.0;
  for (double loss : chunk_loss) total += loss;
  return total / num_pairs;
}

}  // namespace gnnscale
