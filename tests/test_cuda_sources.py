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
def test_every_cuda_source_compiles(tmp_path):
    # A CPU-only torch wheel ships the c10/cuda headers but not the one generated at build time.
    shim = tmp_path / "include" / "c10" / "cuda" / "impl"
    shim.mkdir(parents=True)
    (shim / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    includes = [f"-I{tmp_path / 'include'}", f"-I{PROJECT / 'csrc'}", f"-I{sysconfig.get_paths()['include']}"]
    includes += [f"-I{path}" for path in cpp_extension.include_paths()]
    # One nvcc per source, all at once: each is single-threaded and most of its time is the host
    # compiler parsing torch's headers, so they overlap on every core there is.
    compiles = {source.name: subprocess.Popen(
        ["nvcc", "-std=c++20", "-c", str(source), "-o", str(tmp_path / f"{source.stem}.o"),
         "--expt-relaxed-constexpr", "-Xcudafe", "--diag_suppress=3306", *includes],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for source in CUDA_SOURCES}
    failures = {}
    for name, process in compiles.items():
        _, errors = process.communicate(timeout=900)
        if process.returncode != 0:
            failures[name] = errors[-4000:]
    assert not failures, "nvcc failed on " + "\n".join(f"{name}:\n{errors}" for name, errors in failures.items())


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
