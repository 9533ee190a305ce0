"""Builds the gnnscale._C extension: OpenMP CPU kernels always, CUDA kernels when CUDA is usable."""
import glob
import os

from setuptools import setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _sources(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def _extension():
    cpu_sources = ["csrc/ops.cpp"] + _sources("csrc/cpu/*.cpp")
    # -g0: Python's build flags ask for debug information, which doubles the compile time of
    # every file (torch's headers) and which nobody reads in a released kernel.
    cxx_flags = ["-O3", "-g0", "-fopenmp", "-std=c++20"]
    with_cuda = os.environ.get("FORCE_CUDA") == "1" or (
        cpp_extension.CUDA_HOME is not None and __import__("torch").cuda.is_available()
    )
    if with_cuda:
        return cpp_extension.CUDAExtension(
            "gnnscale._C",
            cpu_sources + _sources("csrc/cuda/*.cu"),
            include_dirs=[os.path.join(ROOT, "csrc")],
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-std=c++20", "--expt-relaxed-constexpr"]},
            extra_link_args=["-fopenmp"],
        )
    return cpp_extension.CppExtension(
        "gnnscale._C",
        cpu_sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_compile_args=cxx_flags,
        extra_link_args=["-fopenmp"],
    )


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
