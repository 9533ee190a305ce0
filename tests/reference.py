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
    indptr = [0] * (num_nodes + 1)
    for u, _, _ in edges:
        indptr[u + 1] += 1
    for v in range(num_nodes):
        indptr[v + 1] += indptr[v]
    return (torch.tensor(indptr, dtype=torch.int64), torch.tensor([e[1] for e in edges], dtype=row.dtype),
            torch.tensor([e[2] for e in edges], dtype=torch.int64))


def csr_to_csc_reference(indptr, indices, num_cols):
    slots = []  # (column, row, CSR slot)
    for r in range(indptr.numel() - 1):
        for slot in range(int(indptr[r]), int(indptr[r + 1])):
            slots.append((int(indices[slot]), r, slot))
    slots.sort()
    out_ptr = [0] * (num_cols + 1)
    for c, _, _ in slots:
        out_ptr[c + 1] += 1
    for c in range(num_cols):
        out_ptr[c + 1] += out_ptr[c]
    return (torch.tensor(out_ptr, dtype=torch.int64), torch.tensor([s[1] for s in slots], dtype=indices.dtype),
            torch.tensor([s[2] for s in slots], dtype=torch.int64))
