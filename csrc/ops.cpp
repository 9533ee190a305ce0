// The one registration of gnnscale's operators. Schemas are declared here; the CPU kernels are
// bound here and the CUDA kernels in csrc/cuda/ (built only when CUDA is available).
#include <Python.h>
#include <torch/library.h>

#include "cpu/csr.h"

// Importing gnnscale._C loads this library, which runs the registrations below.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "gnnscale C++/CUDA operators", -1, nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(gnnscale, m) {
  m.def(
      "coo_to_csr(Tensor row, Tensor col, int num_nodes, bool drop_self_loops, bool drop_duplicates, "
      "bool symmetrize) -> (Tensor indptr, Tensor indices, Tensor perm)");
  m.def("csr_to_csc(Tensor indptr, Tensor indices, int num_cols) -> (Tensor indptr, Tensor indices, Tensor perm)");
  m.def("degree(Tensor index, int num_nodes) -> Tensor");
}

TORCH_LIBRARY_IMPL(gnnscale, CPU, m) {
  m.impl("coo_to_csr", &gnnscale::coo_to_csr_cpu);
  m.impl("csr_to_csc", &gnnscale::csr_to_csc_cpu);
  m.impl("degree", &gnnscale::degree_cpu);
}
