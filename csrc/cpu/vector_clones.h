#pragma once

// Hot loops marked GNNSCALE_VECTOR_CLONES are compiled twice, for AVX2 + FMA and for the
// baseline, and the loader picks one for the CPU at hand (GCC function multi-versioning): the
// extension is built without -march so that one wheel runs everywhere.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GNNSCALE_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GNNSCALE_VECTOR_CLONES
#endif
