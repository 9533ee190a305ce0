// Temporal neighbour sampling over a time-sorted CSR (TGN, JODIE, TGL-style "T-CSR").
//
// Each node's row lists the events it took part in, in event order (which is time order), as
// (neighbour, event id, event time). A query (node, t[, event_limit]) may see only the events
// strictly before t and, when a limit is given, with an id below it: both are prefixes of the
// row, found by binary search. From that prefix the sampler takes the k most recent events, or k
// distinct events uniformly at random; either way in chronological order, padded with -1.
#include "temporal_sample.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "checks.h"
#include "choose.h"
#include "rng.h"

namespace gnnscale {
namespace {

constexpr uint64_t kTemporalStream = 0x7e3907a1;

// A queried node's row is checked as it is read; a query with a bad one gets no neighbours, and
// the problem is raised after the parallel loop.
template <typename Index>
void sample(const int64_t* indptr, int64_t num_nodes, int64_t num_slots, const Index* neighbors,
            const int64_t* edge_ids, const double* edge_times, const int64_t* nodes, const double* times,
            const int64_t* limits, int64_t num_queries, int64_t k, bool most_recent, int64_t seed, int64_t* out_nodes,
            int64_t* out_edges, double* out_times) {
  ProblemLog problems;
  at::parallel_for(0, num_queries, 256, [&](int64_t begin, int64_t end) {
    // Local copies of what the checks read: the int64 stores of the output might alias the
    // captured ones, so the compiler would reload them for every query.
    const int64_t* row_pointers = indptr;
    const int64_t node_count = num_nodes, slot_count = num_slots;
    std::vector<int64_t> offsets;
    FirstBadRead bad;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t node = nodes[i];
      int64_t row = 0, row_size = 0;
      if (C10_UNLIKELY(!in_range(node, node_count))) {
        bad.id(i, node);
      } else if (C10_UNLIKELY(!row_in_bounds(row_pointers[node], row_pointers[node + 1], slot_count))) {
        bad.row(node, row_pointers[node], row_pointers[node + 1]);
      } else {
        row = row_pointers[node];
        row_size = row_pointers[node + 1] - row;
      }
      int64_t visible = std::lower_bound(edge_times + row, edge_times + row + row_size, times[i]) - (edge_times + row);
      if (limits != nullptr) {
        visible = std::min<int64_t>(
            visible, std::lower_bound(edge_ids + row, edge_ids + row + visible, limits[i]) - (edge_ids + row));
      }
      const int64_t take = std::min(visible, k);
      offsets.clear();
      if (most_recent || take == visible) {
        for (int64_t j = visible - take; j < visible; ++j) offsets.push_back(j);
      } else {
        Rng rng(static_cast<uint64_t>(seed), kTemporalStream, static_cast<uint64_t>(i));
        choose_distinct(visible, take, rng, offsets);
      }
      int64_t* node_row = out_nodes + i * k;
      int64_t* edge_row = out_edges + i * k;
      double* time_row = out_times + i * k;
      for (int64_t j = 0; j < take; ++j) {
        const int64_t slot = row + offsets[j];
        node_row[j] = static_cast<int64_t>(neighbors[slot]);
        edge_row[j] = edge_ids[slot];
        time_row[j] = edge_times[slot];
      }
      std::fill(node_row + take, node_row + k, -1);
      std::fill(edge_row + take, edge_row + k, -1);
      std::fill(time_row + take, time_row + k, 0.0);
    }
    problems.take(bad, "nodes hold", num_nodes, "nodes", num_slots);
  });
  problems.raise_if_any();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> temporal_neighbor_sample_cpu(
    const at::Tensor& indptr, const at::Tensor& neighbors, const at::Tensor& edge_ids, const at::Tensor& edge_times,
    const at::Tensor& nodes, const at::Tensor& times, const std::optional<at::Tensor>& event_limit, int64_t k,
    bool most_recent, int64_t seed) {
  check_indptr(indptr);
  check_index_tensor(neighbors, "neighbors");
  const int64_t num_slots = neighbors.numel();
  TORCH_CHECK_VALUE(edge_ids.scalar_type() == at::kLong && edge_ids.is_contiguous() && edge_ids.numel() == num_slots,
                    "edge_ids must be contiguous int64 with one entry per neighbour slot");
  TORCH_CHECK_VALUE(
      edge_times.scalar_type() == at::kDouble && edge_times.is_contiguous() && edge_times.numel() == num_slots,
      "edge_times must be contiguous float64 with one entry per neighbour slot");
  TORCH_CHECK_VALUE(nodes.scalar_type() == at::kLong && nodes.is_contiguous() && nodes.dim() == 1,
                    "nodes must be a contiguous 1-D int64 tensor");
  TORCH_CHECK_VALUE(times.scalar_type() == at::kDouble && times.is_contiguous() && times.numel() == nodes.numel(),
                    "times must be contiguous float64, one per node");
  const int64_t* limits = nullptr;
  if (event_limit.has_value()) {
    TORCH_CHECK_VALUE(event_limit->scalar_type() == at::kLong && event_limit->is_contiguous() &&
                          event_limit->numel() == nodes.numel(),
                      "event_limit must be contiguous int64, one per node");
    limits = event_limit->data_ptr<int64_t>();
  }
  TORCH_CHECK_VALUE(k >= 0, "k must be non-negative");
  check_indptr_ends(indptr, num_slots);
  const int64_t n = nodes.numel();
  check_output_size("neighbours (queries x k)", n, k, 2 * sizeof(int64_t) + sizeof(double));
  auto out_nodes = at::empty({n, k}, nodes.options());
  auto out_edges = at::empty({n, k}, nodes.options());
  auto out_times = at::empty({n, k}, times.options());
  AT_DISPATCH_INDEX_TYPES(neighbors.scalar_type(), "temporal_neighbor_sample", [&] {
    sample<index_t>(indptr.data_ptr<int64_t>(), indptr.numel() - 1, num_slots, neighbors.data_ptr<index_t>(),
                    edge_ids.data_ptr<int64_t>(), edge_times.data_ptr<double>(), nodes.data_ptr<int64_t>(),
                    times.data_ptr<double>(), limits, n, k, most_recent, seed, out_nodes.data_ptr<int64_t>(),
                    out_edges.data_ptr<int64_t>(), out_times.data_ptr<double>());
  });
  return {out_nodes, out_edges, out_times};
}

}  // namespace gnnscale
