// Multi-hop node-wise neighbour sampling on a CSC graph (for each node, the sources of its
// in-edges), the CPU kernel behind gnnscale's NeighborSampler.
//
// Each hop samples the in-neighbours of every frontier node in parallel, each node drawing from
// its own random stream (seed, hop, position), so a sample depends on the seed only. The new
// nodes are then numbered, also in parallel, in order of first appearance, which gives the same
// node and edge order as PyG's samplers: seeds first, then each hop's new nodes.
#include "neighbor_sample.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <cmath>
#include <vector>

#include "checks.h"
#include "choose.h"
#include "rng.h"

namespace gnnscale {
namespace {

constexpr int64_t kNodesPerTask = 32;
// Memory per sampled edge at the peak of a call: per-task (slot, source, target), the growing
// (row, col, slot) outputs and their final tensors.
constexpr int64_t kBytesPerSampledEdge = 96;

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
    if (replace) {
      const size_t first = out.size();
      for (int64_t j = 0; j < fanout; ++j) out.push_back(static_cast<int64_t>(rng.below(degree)));
      std::sort(out.begin() + first, out.end());
    } else {
      choose_distinct(degree, fanout, rng, out);
    }
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

// Per-node scratch arrays for the calling thread (global id -> local id; global id -> first edge
// of a hop that reaches it), reset entry by entry after use, so a call costs O(sample), not
// O(num_nodes). Each loader thread has its own.
struct Scratch {
  std::vector<int64_t> local, first_edge;
};

Scratch& scratch_for(int64_t num_nodes) {
  thread_local Scratch scratch;
  if (static_cast<int64_t>(scratch.local.size()) < num_nodes) {
    scratch.local.assign(num_nodes, -1);
    scratch.first_edge.assign(num_nodes, std::numeric_limits<int64_t>::max());
  }
  return scratch;
}

// What one task (kNodesPerTask consecutive frontier nodes) sampled: CSC slots, source ids, the
// frontier position of each edge's target, and where its edges and new nodes go in the output.
struct TaskSample {
  std::vector<int64_t> slot, src, dst;
  int64_t edge_offset = 0, new_offset = 0, num_new = 0;
};

// Resets the scratch entries of the sampled nodes when the call ends, normally or by an error, so
// the next call on this thread starts from clean scratch.
struct LocalIdsReset {
  int64_t* local;
  const std::vector<int64_t>& nodes;
  ~LocalIdsReset() {
    at::parallel_for(0, static_cast<int64_t>(nodes.size()), 4096, [&](int64_t first, int64_t last) {
      for (int64_t i = first; i < last; ++i) local[nodes[i]] = -1;
    });
  }
};

// With replacement every frontier node with an in-edge draws `fanout` edges, whatever its degree:
// a huge fanout is refused before anything is drawn.
void check_hop_size(int64_t frontier, int64_t fanout, bool replace) {
  if (!replace || fanout < 0) return;  // without replacement a hop samples at most every edge once
  check_output_size("edges sampled with replacement (frontier nodes x fanout)", frontier, fanout,
                    kBytesPerSampledEdge);
}

template <typename idx_t>
std::vector<at::Tensor> sample_impl(const at::Tensor& indptr_t, const at::Tensor& indices_t, const at::Tensor& seeds_t,
                                    const std::vector<int64_t>& fanouts, bool replace,
                                    const c10::optional<at::Tensor>& weight_t, int64_t seed) {
  const int64_t num_nodes = indptr_t.numel() - 1;
  const int64_t num_edges = indices_t.numel();
  const int64_t* indptr = indptr_t.data_ptr<int64_t>();
  const idx_t* indices = indices_t.data_ptr<idx_t>();
  const double* weight = weight_t.has_value() ? weight_t->data_ptr<double>() : nullptr;

  Scratch& scratch = scratch_for(num_nodes);
  int64_t* local = scratch.local.data();
  int64_t* first_edge = scratch.first_edge.data();
  std::vector<int64_t> nodes(seeds_t.data_ptr<int64_t>(), seeds_t.data_ptr<int64_t>() + seeds_t.numel());
  const LocalIdsReset reset_local{local, nodes};
  for (size_t i = 0; i < nodes.size(); ++i) local[nodes[i]] = static_cast<int64_t>(i);

  std::vector<int64_t> row, col, slot;
  std::vector<int64_t> num_sampled_nodes{static_cast<int64_t>(nodes.size())}, num_sampled_edges;
  int64_t hop_begin = 0;
  for (size_t hop = 0; hop < fanouts.size(); ++hop) {
    const int64_t hop_end = static_cast<int64_t>(nodes.size());
    const int64_t tasks = (hop_end - hop_begin + kNodesPerTask - 1) / kNodesPerTask;
    std::vector<TaskSample> sampled(tasks);
    check_hop_size(hop_end - hop_begin, fanouts[hop], replace);
    const NodeSampler sampler{fanouts[hop], replace, weight};
    auto for_each_task = [&](const auto& fn) {
      at::parallel_for(0, tasks, 1, [&](int64_t first, int64_t last) {
        for (int64_t task = first; task < last; ++task) fn(task, sampled[task]);
      });
    };

    // 1. Draw every frontier node's neighbours. Rows and ids are checked as they are read; a bad
    //    one is skipped and reported once the hop is drawn.
    ProblemLog problems;
    at::parallel_for(0, tasks, 1, [&](int64_t first, int64_t last) {
      std::vector<int64_t> offsets;
      std::vector<std::pair<double, int64_t>> buffer;
      for (int64_t task = first; task < last; ++task) {
        TaskSample& out = sampled[task];
        const int64_t begin = hop_begin + task * kNodesPerTask;
        const int64_t end = std::min(hop_end, begin + kNodesPerTask);
        for (int64_t position = begin; position < end; ++position) {
          const int64_t v = nodes[position];
          const int64_t first_slot = indptr[v], end_slot = indptr[v + 1];
          if (C10_UNLIKELY(!row_in_bounds(first_slot, end_slot, num_edges))) {
            problems.bad_row(v, first_slot, end_slot, num_edges);
            continue;
          }
          Rng rng(static_cast<uint64_t>(seed), hop, static_cast<uint64_t>(position));
          offsets.clear();
          sampler.sample(first_slot, end_slot - first_slot, rng, offsets, buffer);
          for (int64_t offset : offsets) {
            const int64_t u = static_cast<int64_t>(indices[first_slot + offset]);
            if (C10_UNLIKELY(!in_range(u, num_nodes))) {
              problems.bad_id("indices hold", first_slot + offset, u, num_nodes, "nodes");
              continue;
            }
            out.slot.push_back(first_slot + offset);
            out.src.push_back(u);
            out.dst.push_back(position);
          }
        }
      }
    });
    problems.raise_if_any();
    int64_t hop_edges = 0;
    for (TaskSample& task : sampled) {
      task.edge_offset = hop_edges;
      hop_edges += static_cast<int64_t>(task.src.size());
    }

    // 2. Number the new nodes in order of first appearance: each finds its first edge (atomic
    //    minimum over edge positions), and the edges that are first are ranked by position.
    for_each_task([&](int64_t, TaskSample& task) {
      for (size_t j = 0; j < task.src.size(); ++j) {
        const int64_t u = task.src[j];
        if (local[u] >= 0) continue;
        std::atomic_ref<int64_t> first(first_edge[u]);
        int64_t seen = first.load(std::memory_order_relaxed);
        const int64_t position = task.edge_offset + static_cast<int64_t>(j);
        while (position < seen && !first.compare_exchange_weak(seen, position, std::memory_order_relaxed)) {
        }
      }
    });
    auto is_first = [&](const TaskSample& task, size_t j) {
      const int64_t u = task.src[j];
      return local[u] < 0 && first_edge[u] == task.edge_offset + static_cast<int64_t>(j);
    };
    for_each_task([&](int64_t, TaskSample& task) {
      for (size_t j = 0; j < task.src.size(); ++j) task.num_new += is_first(task, j);
    });
    int64_t added = 0;
    for (TaskSample& task : sampled) {
      task.new_offset = hop_end + added;
      added += task.num_new;
    }
    nodes.resize(hop_end + added);
    for_each_task([&](int64_t, TaskSample& task) {
      int64_t id = task.new_offset;
      for (size_t j = 0; j < task.src.size(); ++j) {
        if (!is_first(task, j)) continue;
        nodes[id] = task.src[j];
        first_edge[task.src[j]] = std::numeric_limits<int64_t>::max();  // reset for later calls
        local[task.src[j]] = id++;
      }
    });

    // 3. Write the edges in local ids.
    const size_t out_begin = row.size();
    row.resize(out_begin + hop_edges);
    col.resize(out_begin + hop_edges);
    slot.resize(out_begin + hop_edges);
    for_each_task([&](int64_t, TaskSample& task) {
      const size_t base = out_begin + task.edge_offset;
      for (size_t j = 0; j < task.src.size(); ++j) {
        row[base + j] = local[task.src[j]];
        col[base + j] = task.dst[j];
        slot[base + j] = task.slot[j];
      }
    });
    num_sampled_edges.push_back(hop_edges);
    num_sampled_nodes.push_back(added);
    hop_begin = hop_end;
  }

  auto to_tensor = [](const std::vector<int64_t>& values) {
    at::Tensor out = at::empty({static_cast<int64_t>(values.size())}, at::kLong);
    std::copy(values.begin(), values.end(), out.data_ptr<int64_t>());
    return out;
  };
  return {to_tensor(nodes), to_tensor(row), to_tensor(col), to_tensor(slot), to_tensor(num_sampled_nodes),
          to_tensor(num_sampled_edges)};
}

template <typename idx_t>
std::vector<at::Tensor> draw_impl(const at::Tensor& indptr_t, const at::Tensor& indices_t, const at::Tensor& rows_t,
                                  const at::Tensor& positions_t, int64_t fanout, int64_t hop, bool replace,
                                  const c10::optional<at::Tensor>& weight_t, int64_t seed) {
  const int64_t num_rows = indptr_t.numel() - 1;
  const int64_t num_edges = indices_t.numel();
  const int64_t* indptr = indptr_t.data_ptr<int64_t>();
  const idx_t* indices = indices_t.data_ptr<idx_t>();
  const int64_t* rows = rows_t.data_ptr<int64_t>();
  const int64_t* positions = positions_t.data_ptr<int64_t>();
  const double* weight = weight_t.has_value() ? weight_t->data_ptr<double>() : nullptr;
  const int64_t n = rows_t.numel();
  check_hop_size(n, fanout, replace);
  const NodeSampler sampler{fanout, replace, weight};
  const int64_t tasks = (n + kNodesPerTask - 1) / kNodesPerTask;
  std::vector<std::vector<int64_t>> slots(tasks);
  at::Tensor counts = at::zeros({n}, at::kLong);
  int64_t* count = counts.data_ptr<int64_t>();
  ProblemLog problems;
  at::parallel_for(0, tasks, 1, [&](int64_t first, int64_t last) {
    std::vector<int64_t> offsets;
    std::vector<std::pair<double, int64_t>> buffer;
    for (int64_t task = first; task < last; ++task) {
      for (int64_t i = task * kNodesPerTask; i < std::min(n, (task + 1) * kNodesPerTask); ++i) {
        const int64_t v = rows[i];
        const int64_t first_slot = indptr[v], end_slot = indptr[v + 1];
        if (C10_UNLIKELY(!row_in_bounds(first_slot, end_slot, num_edges))) {
          problems.bad_row(v, first_slot, end_slot, num_edges);
          continue;
        }
        // The stream the multi-hop kernel gives the node at this frontier position.
        Rng rng(static_cast<uint64_t>(seed), hop, static_cast<uint64_t>(positions[i]));
        offsets.clear();
        sampler.sample(first_slot, end_slot - first_slot, rng, offsets, buffer);
        for (int64_t offset : offsets) slots[task].push_back(first_slot + offset);
        count[i] = static_cast<int64_t>(offsets.size());
      }
    }
  });
  problems.raise_if_any();
  int64_t total = 0;
  std::vector<int64_t> starts(tasks);
  for (int64_t task = 0; task < tasks; ++task) {
    starts[task] = total;
    total += static_cast<int64_t>(slots[task].size());
  }
  at::Tensor slot_t = at::empty({total}, at::kLong);
  at::Tensor source_t = at::empty({total}, at::kLong);
  int64_t* slot_out = slot_t.data_ptr<int64_t>();
  int64_t* source_out = source_t.data_ptr<int64_t>();
  at::parallel_for(0, tasks, 1, [&](int64_t first, int64_t last) {
    for (int64_t task = first; task < last; ++task) {
      for (size_t j = 0; j < slots[task].size(); ++j) {
        slot_out[starts[task] + j] = slots[task][j];
        source_out[starts[task] + j] = static_cast<int64_t>(indices[slots[task][j]]);
      }
    }
  });
  (void)num_rows;
  return {counts, slot_t, source_t};
}

}  // namespace

std::vector<at::Tensor> neighbor_draw_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& rows,
                                          const at::Tensor& positions, int64_t fanout, int64_t hop, bool replace,
                                          const c10::optional<at::Tensor>& weight, int64_t seed) {
  check_indptr(indptr);
  check_index_tensor(indices, "indices");
  for (const at::Tensor* t : {&rows, &positions})
    TORCH_CHECK_VALUE(t->scalar_type() == at::kLong && t->dim() == 1 && t->is_contiguous(),
                      "rows and positions must be contiguous 1-D int64 tensors");
  TORCH_CHECK_VALUE(rows.numel() == positions.numel(), "rows and positions must have one entry each per node, got ",
                    rows.numel(), " and ", positions.numel());
  TORCH_CHECK_VALUE(fanout >= -1, "fanout must be positive or -1, got ", fanout);
  TORCH_CHECK_VALUE(hop >= 0, "hop must be non-negative, got ", hop);
  if (weight.has_value())
    TORCH_CHECK_VALUE(weight->scalar_type() == at::kDouble && weight->numel() == indices.numel() &&
                          weight->is_contiguous(),
                      "weight must be a contiguous float64 tensor with one value per edge");
  check_indptr_ends(indptr, indices.numel());
  const int64_t num_rows = indptr.numel() - 1;
  const int64_t* row_ids = rows.data_ptr<int64_t>();
  for (int64_t i = 0; i < rows.numel(); ++i)
    TORCH_CHECK_VALUE(in_range(row_ids[i], num_rows), "rows hold ", row_ids[i], " at position ", i,
                      ", out of range for ", num_rows, " rows");
  return AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "neighbor_draw", [&] {
    return draw_impl<index_t>(indptr, indices, rows, positions, fanout, hop, replace, weight, seed);
  });
}

std::vector<at::Tensor> neighbor_sample_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& seeds,
                                            at::IntArrayRef fanouts, bool replace,
                                            const c10::optional<at::Tensor>& weight, int64_t seed) {
  check_indptr(indptr);
  check_index_tensor(indices, "indices");
  TORCH_CHECK_VALUE(seeds.scalar_type() == at::kLong && seeds.dim() == 1 && seeds.is_contiguous(),
                    "seeds must be a contiguous 1-D int64 tensor");
  if (weight.has_value())
    TORCH_CHECK_VALUE(weight->scalar_type() == at::kDouble && weight->numel() == indices.numel() &&
                          weight->is_contiguous(),
                      "weight must be a contiguous float64 tensor with one value per edge");
  std::vector<int64_t> hops(fanouts.begin(), fanouts.end());
  for (int64_t f : hops) TORCH_CHECK_VALUE(f >= -1, "fanouts must be positive or -1, got ", f);
  check_indptr_ends(indptr, indices.numel());
  const int64_t num_nodes = indptr.numel() - 1;
  const int64_t* seed_ids = seeds.data_ptr<int64_t>();
  for (int64_t i = 0; i < seeds.numel(); ++i)
    TORCH_CHECK_VALUE(in_range(seed_ids[i], num_nodes), "seeds hold ", seed_ids[i], " at position ", i,
                      ", out of range for ", num_nodes, " nodes");
  return AT_DISPATCH_INDEX_TYPES(indices.scalar_type(), "neighbor_sample", [&] {
    return sample_impl<index_t>(indptr, indices, seeds, hops, replace, weight, seed);
  });
}

}  // namespace gnnscale
