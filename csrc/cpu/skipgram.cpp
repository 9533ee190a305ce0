// Skip-gram with negative sampling on the CPU: positive pairs from random walks (every pair within
// `window` steps of each other), shuffled in cache-sized blocks, then trained by lock-free
// multi-threaded SGD (Hogwild, as word2vec and LINE do): threads update shared rows without locks,
// which loses a negligible share of updates on sparse, large tables and scales with cores.
#include "skipgram.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "rng.h"

namespace gnnscale {
namespace {

constexpr uint64_t kShuffleStream = 0x5b0ff1e;
constexpr uint64_t kNegativeStream = 0x4e9a7;
constexpr int64_t kShuffleBlock = 1 << 20;  // pairs per shuffled block: 16 MiB of int64 pairs
constexpr int64_t kTrainChunk = 4096;       // pairs per scheduling unit (one RNG stream each)

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

// The walk with frequent nodes dropped (word2vec's subsampling: node v stays with probability
// keep[v]), written to `kept`; returns how many stayed. -1 padding ends the walk.
int64_t subsample(const int64_t* walk, int64_t w, int64_t length, const double* keep, int64_t seed,
                  std::vector<int64_t>& kept) {
  kept.clear();
  Rng rng(seed, kSubsampleStream, w);
  for (int64_t i = 0; i < length && walk[i] >= 0; ++i) {
    if (keep == nullptr || rng.uniform() < keep[walk[i]]) kept.push_back(walk[i]);
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
  const double* keep = keep_t.defined() ? keep_t.data_ptr<double>() : nullptr;
  std::vector<int64_t> offset(num_walks + 1, 0);
  at::parallel_for(0, num_walks, 256, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> kept;
    for (int64_t w = begin; w < end; ++w) {
      offset[w + 1] = pairs_in_walk(subsample(data + w * length, w, length, keep, seed, kept), w, length, windows);
    }
  });
  for (int64_t w = 0; w < num_walks; ++w) offset[w + 1] += offset[w];
  const int64_t total = offset[num_walks];
  at::Tensor pairs = at::empty({total, 2}, at::kLong);
  int64_t* out = pairs.data_ptr<int64_t>();
  at::parallel_for(0, num_walks, 256, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> kept;
    for (int64_t w = begin; w < end; ++w) {
      const int64_t valid = subsample(data + w * length, w, length, keep, seed, kept);
      const int64_t* walk = kept.data();
      int64_t* slot = out + 2 * offset[w];
      for (int64_t i = 0; i < valid; ++i) {
        const int64_t reach = windows.at(w, i, length);
        for (int64_t j = std::max<int64_t>(0, i - reach); j < valid && j <= i + reach; ++j) {
          if (j == i) continue;
          slot[0] = walk[i];
          slot[1] = walk[j];
          slot += 2;
        }
      }
    }
  });
  // Shuffle within blocks: neighbouring pairs of one walk would otherwise update the same rows
  // back to back; a block-local shuffle breaks that up while staying in cache.
  const int64_t blocks = (total + kShuffleBlock - 1) / kShuffleBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      Rng rng(seed, kShuffleStream, b);
      int64_t* block = out + 2 * b * kShuffleBlock;
      const int64_t n = std::min(kShuffleBlock, total - b * kShuffleBlock);
      for (int64_t i = n - 1; i > 0; --i) {
        const int64_t j = static_cast<int64_t>(rng.below(i + 1));
        std::swap(block[2 * i], block[2 * j]);
        std::swap(block[2 * i + 1], block[2 * j + 1]);
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
  TORCH_CHECK_VALUE(negatives >= 0, "negatives must be non-negative");
  TORCH_CHECK_VALUE(share_negatives >= 1, "share_negatives must be at least 1");
  const int64_t num_nodes = vertex.size(0), dim = vertex.size(1);
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
  const int64_t* pair = pairs.data_ptr<int64_t>();
  float* vertex_data = vertex.data_ptr<float>();
  float* context_data = context.data_ptr<float>();
  const int64_t chunks = (num_pairs + kTrainChunk - 1) / kTrainChunk;
  std::vector<double> chunk_loss(chunks, 0.0);
  const SigmoidTable& table = sigmoid_table();

  at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
    std::vector<float> gradient(dim);
    std::vector<int64_t> drawn(negatives);
    for (int64_t c = first; c < last; ++c) {
      Rng rng(seed, kNegativeStream, c);
      const int64_t begin = c * kTrainChunk, end = std::min(num_pairs, begin + kTrainChunk);
      double loss = 0.0;
      for (int64_t i = begin; i < end; ++i) {
        if ((i - begin) % share_negatives == 0) {
          for (int64_t k = 0; k < negatives; ++k) {
            const int64_t node = static_cast<int64_t>(rng.below(num_nodes));
            drawn[k] = rng.uniform() < prob[node] ? node : alias[node];
          }
        }
        const float lr = static_cast<float>(lr_start + (lr_end - lr_start) * static_cast<double>(i) / num_pairs);
        const int64_t source = pair[2 * i], target = pair[2 * i + 1];
        float* u = vertex_data + source * dim;
        std::fill(gradient.begin(), gradient.end(), 0.f);
        for (int64_t k = -1; k < negatives; ++k) {
          const bool positive = k < 0;
          const int64_t other = positive ? target : drawn[k];
          if (!positive && other == target) continue;
          float* v = context_data + other * dim;
          float dot = 0.f;
#pragma omp simd reduction(+ : dot)
          for (int64_t d = 0; d < dim; ++d) dot += u[d] * v[d];
          const int at = SigmoidTable::slot(dot);
          // log sigmoid(-x) is the mirrored slot of log sigmoid(x).
          loss -= positive ? table.log_sigmoid[at] : table.log_sigmoid[kTableSize - at];
          const float g = ((positive ? 1.f : 0.f) - table.sigmoid[at]) * lr;
#pragma omp simd
          for (int64_t d = 0; d < dim; ++d) {
            gradient[d] += g * v[d];
            v[d] += g * u[d];
          }
        }
#pragma omp simd
        for (int64_t d = 0; d < dim; ++d) u[d] += gradient[d];
      }
      chunk_loss[c] = loss;
    }
  });
  double total = 0.0;
  for (double loss : chunk_loss) total += loss;
  return total / num_pairs;
}

}  // namespace gnnscale
