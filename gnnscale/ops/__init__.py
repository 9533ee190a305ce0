"""Typed entry points to the gnnscale C++/CUDA operators.

The modules of this package are the only ones that call ``torch.ops.gnnscale`` (``kernels``). Each wrapper checks its arguments once,
here or at the top of its C++ kernel, and raises ``ValueError`` naming the problem. Graph topology
(row pointers, neighbour ids) may come from a file and is not range-checked here: the kernels
check every row and id in the pass that reads it and raise ``ValueError`` after that pass, so a
corrupt graph costs no extra O(E) pass per call and never crashes the process. Output sizes are
refused above 2^31 entries or the memory available, before anything is allocated.
"""
from . import kernels  # noqa: F401  (the operators themselves)
from .checks import (  # noqa: F401
    INDEX_DTYPES, MAX_OUTPUT_ENTRIES, check_count, check_csr, check_device, check_edge_weights, check_fanouts,
    check_index_tensor, check_seed, check_topology, is_known_sound_csr, remember_sound_csr, resolve_device,
)
from .sparse import coo_to_csr, csr_to_csc, degree, scaled_spmm, gcn_propagate  # noqa: F401
from .sampling import (  # noqa: F401
    neighbor_sample, neighbor_draw, alias_table, alias_sample, negative_tails, hop_token_sample, temporal_neighbor_sample,
)
from .walks import random_walk, walk_pairs, sgns_train  # noqa: F401
from .gather import gather_rows, gather_dot, gather_weighted_sum  # noqa: F401
from .nn import time_encode, dropout  # noqa: F401
from .disk import open_disk_table, disk_gather, disk_table_load_static, disk_table_stats  # noqa: F401
