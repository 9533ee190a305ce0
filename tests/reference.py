"""Slow, obviously-correct Python versions of the kernels, used only as test oracles."""
import torch


def coo_to_csr_reference(row, col, num_nodes, drop_self_loops=False, drop_duplicates=False, symmetrize=False):
    edges = []  # (source, target, input edge id)
    for eid, (u, v) in enumerate(zip(row.tolist(), col.tolist())):
        if drop_self_loops and u == v:
            continue
        edges.append((u, v, eid))
        if symmetrize and u != v:
            edges.append((v, u, eid))
    edges.sort()
    if drop_duplicates:
        kept = []
        for edge in edges:
            if not kept or kept[-1][:2] != edge[:2]:
                kept.append(edge)
        edges = kept
    return (_indptr([e[0] for e in edges], num_nodes), torch.tensor([e[1] for e in edges], dtype=row.dtype),
            torch.tensor([e[2] for e in edges], dtype=torch.int64))


def csr_to_csc_reference(indptr, indices, num_cols):
    slots = []  # (column, row, CSR slot)
    for r in range(indptr.numel() - 1):
        for slot in range(int(indptr[r]), int(indptr[r + 1])):
            slots.append((int(indices[slot]), r, slot))
    slots.sort()
    return (_indptr([s[0] for s in slots], num_cols), torch.tensor([s[1] for s in slots], dtype=indices.dtype),
            torch.tensor([s[2] for s in slots], dtype=torch.int64))


def _indptr(sorted_keys, num_keys):
    indptr = [0] * (num_keys + 1)
    for key in sorted_keys:
        indptr[key + 1] += 1
    for k in range(num_keys):
        indptr[k + 1] += indptr[k]
    return torch.tensor(indptr, dtype=torch.int64)
