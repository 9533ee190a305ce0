// Marks small helpers that the CPU and the CUDA kernels share.
#pragma once

#ifdef __CUDACC__
#define GNNSCALE_HOST_DEVICE __host__ __device__
#else
#define GNNSCALE_HOST_DEVICE
#endif
