"""Every CUDA source must compile with nvcc, so CI catches CUDA errors on machines without a GPU."""
import shutil
import subprocess
import sysconfig

import pytest
import torch
from torch.utils import cpp_extension

from gnnscale import ops
from conftest import PROJECT, requires_cuda

CUDA_SOURCES = sorted((PROJECT / "csrc" / "cuda").glob("*.cu"))


def test_there_are_cuda_sources():
    assert CUDA_SOURCES, "csrc/cuda holds no .cu files"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("source", CUDA_SOURCES, ids=lambda p: p.name)
def test_cuda_source_compiles(source, tmp_path):
    # A CPU-only torch wheel ships the c10/cuda headers but not the one generated at build time.
    shim = tmp_path / "include" / "c10" / "cuda" / "impl"
    shim.mkdir(parents=True)
    (shim / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    command = ["nvcc", "-std=c++20", "-c", str(source), "-o", str(tmp_path / "out.o"),
               "--expt-relaxed-constexpr", "-Xcudafe", "--diag_suppress=3306",
               f"-I{tmp_path / 'include'}", f"-I{PROJECT / 'csrc'}", f"-I{sysconfig.get_paths()['include']}"]
    command += [f"-I{path}" for path in cpp_extension.include_paths()]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"nvcc failed on {source.name}:\n{result.stderr[-4000:]}"


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("symmetrize", [False, True])
def test_cuda_csr_equals_cpu(dtype, symmetrize):
    gen = torch.Generator().manual_seed(0)
    row = torch.randint(0, 500, (20_000,), generator=gen).to(dtype)
    col = torch.randint(0, 500, (20_000,), generator=gen).to(dtype)
    for flags in ({}, {"drop_self_loops": True, "drop_duplicates": True}):
        cpu = ops.coo_to_csr(row, col, 500, symmetrize=symmetrize, **flags)
        gpu = ops.coo_to_csr(row.cuda(), col.cuda(), 500, symmetrize=symmetrize, **flags)
        assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu, gpu))
    indptr, indices, _ = cpu
    transposed = ops.csr_to_csc(indptr, indices, 500)
    transposed_gpu = ops.csr_to_csc(indptr.cuda(), indices.cuda(), 500)
    assert all(torch.equal(a, b.cpu()) for a, b in zip(transposed, transposed_gpu))
    assert torch.equal(ops.degree(col.cuda(), 500).cpu(), ops.degree(col, 500))
