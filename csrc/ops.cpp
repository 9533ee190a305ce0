// The one registration of gnnscale's operators. Schemas are declared here; the CPU kernels are
// bound here and the CUDA kernels in csrc/cuda/ (built only when CUDA is available).
#include <Python.h>
#include <torch/library.h>

#include "cpu/csr.h"
#include "cpu/disk_io.h"
#include "cpu/dropout.h"
#include "cpu/gather.h"
#include "cpu/negative_sample.h"
#include "cpu/neighbor_attention.h"
#include "cpu/neighbor_sample.h"
#include "cpu/random_walk.h"
#include "cpu/skipgram.h"
#include "cpu/spmm.h"
#include "cpu/temporal_sample.h"
#include "cpu/time_encoding.h"
#include "cpu/tokens.h"

// Importing gnnscale._C loads this library, which runs the registrations below.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "gnnscale C++/CUDA operators", -1, nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(gnnscale, m) {
  m.def(
      "coo_to_csr(Tensor row, Tensor col, int num_nodes, bool drop_self_loops, bool drop_duplicates, "
      "bool symmetrize) -> (Tensor indptr, Tensor indices, Tensor perm)");
  // sound_csr: the caller (gnnscale.ops) found this CSR sound before; the transposition then
  // trusts its rows and ids instead of checking them.
  m.def(
      "csr_to_csc(Tensor indptr, Tensor indices, int num_cols, bool sound_csr=False) -> "
      "(Tensor indptr, Tensor indices, Tensor perm)");
  m.def("degree(Tensor index, int num_nodes) -> Tensor");
  m.def(
      "neighbor_sample(Tensor indptr, Tensor indices, Tensor seeds, int[] fanouts, bool replace, Tensor? weight, "
      "int seed) -> Tensor[]");
  m.def(
      "neighbor_draw(Tensor indptr, Tensor indices, Tensor rows, Tensor positions, int fanout, int hop, bool replace, "
      "Tensor? weight, int seed) -> Tensor[]");
  m.def("alias_table(Tensor weight) -> (Tensor prob, Tensor alias)");
  m.def(
      "gather_rows(Tensor table, Tensor index, Tensor? positions, Tensor(a!) out, int max_blocks, "
      "bool align_reads) -> ()");
  m.def("alias_sample(Tensor prob, Tensor alias, int num_samples, int seed) -> Tensor");
  m.def(
      "negative_tails(Tensor indptr, Tensor indices, Tensor src, int num_per_source, Tensor? prob, Tensor? alias, "
      "bool reject_edges, int max_tries, int seed) -> Tensor");
  // sound_csr: the caller (gnnscale.ops) found this CSR sound before; the walks then skip their
  // per-step checks of the rows and ids they follow.
  m.def(
      "random_walk(Tensor indptr, Tensor indices, Tensor starts, int length, Tensor? cumulative_weight, float p, "
      "float q, int seed, bool sound_csr) -> Tensor");
  m.def("walk_pairs(Tensor walks, int window, bool shrink_window, Tensor? keep_prob, int seed) -> Tensor");
  m.def(
      "sgns_train(Tensor(a!) vertex, Tensor(b!) context, Tensor pairs, Tensor neg_prob, Tensor neg_alias, "
      "int negatives, float lr_start, float lr_end, int share_negatives, int seed) -> float");
  m.def("hop_token_sample(Tensor indptr, Tensor indices, Tensor nodes, int num_samples, int[] fanouts, int seed) -> Tensor");
  // sound_csr: the caller (gnnscale.ops) found this CSR sound before; the product then trusts its
  // rows and ids instead of checking each as it reads it.
  m.def(
      "scaled_spmm(Tensor indptr, Tensor indices, Tensor? edge_weight, Tensor? row_scale, Tensor? col_scale, "
      "bool self_loops, Tensor x, Tensor(a!) out, bool sound_csr=False) -> ()");
  m.def(
      "scaled_spmm_sparse_x(Tensor indptr, Tensor indices, Tensor? edge_weight, Tensor? row_scale, "
      "Tensor? col_scale, bool self_loops, Tensor x_indptr, Tensor x_indices, Tensor x_values, Tensor(a!) out) -> ()");
  m.def(
      "temporal_neighbor_sample(Tensor indptr, Tensor neighbors, Tensor edge_ids, Tensor edge_times, Tensor nodes, "
      "Tensor times, Tensor? event_limit, int k, bool most_recent, int seed) -> (Tensor, Tensor, Tensor)");
  m.def("gather_dot(Tensor table, Tensor rows, Tensor vectors) -> Tensor");
  m.def("gather_weighted_sum(Tensor table, Tensor rows, Tensor weights) -> Tensor");
  m.def("scatter_outer_add(Tensor(a!) out, Tensor rows, Tensor coefficients, Tensor vectors) -> ()");
  m.def("dropout_forward(Tensor x, float p, int seed) -> (Tensor, Tensor)");
  m.def("time_encode(Tensor dt, Tensor frequency, Tensor phase) -> Tensor");
  m.def("time_encode_backward(Tensor grad, Tensor dt, Tensor frequency, Tensor phase) -> (Tensor, Tensor)");
  m.def("dropout_backward(Tensor grad, Tensor mask, float p) -> Tensor");
  // A table stored in a file, read by row id (csrc/cpu/disk_io.h), with its host row cache.
  m.class_<gnnscale::DiskTable>("DiskTable")
      .def(torch::init<std::string, int64_t, int64_t, int64_t, std::string, bool, int64_t, std::string>())
      .def("load_static", &gnnscale::DiskTable::load_static)
      .def("stats", &gnnscale::DiskTable::stats)
      .def("engine", &gnnscale::DiskTable::engine)
      .def("fallback_note", &gnnscale::DiskTable::fallback_note)
      .def("direct", &gnnscale::DiskTable::direct)
      .def("block_bytes", &gnnscale::DiskTable::block_bytes)
      .def("cache_capacity_rows", &gnnscale::DiskTable::cache_capacity_rows);
  m.def(
      "disk_gather(__torch__.torch.classes.gnnscale.DiskTable table, Tensor index, Tensor? positions, "
      "Tensor(a!) out) -> ()");
}

TORCH_LIBRARY_IMPL(gnnscale, CPU, m) {
  m.impl("coo_to_csr", &gnnscale::coo_to_csr_cpu);
  m.impl("csr_to_csc", &gnnscale::csr_to_csc_cpu);
  m.impl("degree", &gnnscale::degree_cpu);
  m.impl("neighbor_sample", &gnnscale::neighbor_sample_cpu);
  m.impl("neighbor_draw", &gnnscale::neighbor_draw_cpu);
  m.impl("alias_table", &gnnscale::alias_table_cpu);
  m.impl("gather_rows", &gnnscale::gather_rows_cpu);
  m.impl("alias_sample", &gnnscale::alias_sample_cpu);
  m.impl("negative_tails", &gnnscale::negative_tails_cpu);
  m.impl("random_walk", &gnnscale::random_walk_cpu);
  m.impl("walk_pairs", &gnnscale::walk_pairs_cpu);
  m.impl("sgns_train", &gnnscale::sgns_train_cpu);
  m.impl("hop_token_sample", &gnnscale::hop_token_sample_cpu);
  m.impl("scaled_spmm", &gnnscale::scaled_spmm_cpu);
  m.impl("scaled_spmm_sparse_x", &gnnscale::scaled_spmm_sparse_x_cpu);
  m.impl("temporal_neighbor_sample", &gnnscale::temporal_neighbor_sample_cpu);
  m.impl("gather_dot", &gnnscale::gather_dot_cpu);
  m.impl("gather_weighted_sum", &gnnscale::gather_weighted_sum_cpu);
  m.impl("scatter_outer_add", &gnnscale::scatter_outer_add_cpu);
  m.impl("dropout_forward", &gnnscale::dropout_forward_cpu);
  m.impl("time_encode", &gnnscale::time_encode_cpu);
  m.impl("time_encode_backward", &gnnscale::time_encode_backward_cpu);
  m.impl("dropout_backward", &gnnscale::dropout_backward_cpu);
  m.impl("disk_gather", &gnnscale::disk_gather_cpu);
}
