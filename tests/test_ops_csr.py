import itertools

import pytest
import torch

from gnnscale import ops
from reference import coo_to_csr_reference, csr_to_csc_reference

OPTIONS = list(itertools.product([False, True], repeat=3))


def random_coo(num_nodes, num_edges, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    # Few nodes and many edges: duplicates and self-loops are frequent.
    row = torch.randint(0, num_nodes, (num_edges,), generator=gen).to(dtype)
    col = torch.randint(0, num_nodes, (num_edges,), generator=gen).to(dtype)
    return row, col


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("drop_self_loops,drop_duplicates,symmetrize", OPTIONS)
def test_coo_to_csr_matches_reference(dtype, drop_self_loops, drop_duplicates, symmetrize):
    for seed, (n, m) in enumerate([(1, 5), (7, 60), (50, 400), (300, 200)]):
        row, col = random_coo(n, m, dtype, seed)
        flags = dict(drop_self_loops=drop_self_loops, drop_duplicates=drop_duplicates, symmetrize=symmetrize)
        got = ops.coo_to_csr(row, col, n, **flags)
        want = coo_to_csr_reference(row, col, n, **flags)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype
            assert torch.equal(g, w)


def test_coo_to_csr_large_graph_is_sorted_and_complete():
    n, m = 20_000, 400_000
    row, col = random_coo(n, m, torch.int64, 7)
    indptr, indices, perm = ops.coo_to_csr(row, col, n)
    # Every input edge appears once, at a slot of its source, with its target.
    assert torch.equal(torch.sort(perm).values, torch.arange(m))
    slot_row = torch.repeat_interleave(torch.arange(n), indptr[1:] - indptr[:-1])
    assert torch.equal(slot_row, row[perm])
    assert torch.equal(indices, col[perm])
    # Within each row, (target, edge id) ascends.
    key = slot_row * n + indices
    assert bool((key[1:] >= key[:-1]).all())


def test_csr_is_identical_for_any_thread_count():
    row, col = random_coo(5_000, 300_000, torch.int64, 3)
    previous = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(ops.coo_to_csr(row, col, 5_000, drop_duplicates=True, symmetrize=True))
    finally:
        torch.set_num_threads(previous)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_csr_to_csc_matches_reference(dtype):
    for seed, (n, m) in enumerate([(1, 3), (9, 80), (120, 700)]):
        row, col = random_coo(n, m, dtype, seed)
        indptr, indices, _ = ops.coo_to_csr(row, col, n)
        got = ops.csr_to_csc(indptr, indices, n)
        want = csr_to_csc_reference(indptr, indices, n)
        for g, w in zip(got, want):
            assert torch.equal(g, w)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_degree_matches_bincount(dtype):
    index = torch.randint(0, 1000, (100_000,)).to(dtype)
    assert torch.equal(ops.degree(index, 1200), torch.bincount(index.long(), minlength=1200))


def test_empty_inputs():
    empty = torch.empty(0, dtype=torch.int64)
    indptr, indices, perm = ops.coo_to_csr(empty, empty, 4)
    assert indptr.tolist() == [0, 0, 0, 0, 0] and indices.numel() == 0 and perm.numel() == 0
    indptr, indices, perm = ops.coo_to_csr(empty, empty, 0)
    assert indptr.tolist() == [0]
    assert ops.degree(empty, 3).tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    "row,col,num_nodes,message",
    [
        (torch.tensor([0, -1]), torch.tensor([1, 0]), 3, "negative"),
        (torch.tensor([0, 3]), torch.tensor([1, 0]), 3, "out of range"),
        (torch.tensor([0, 1]), torch.tensor([1, 5]), 3, "out of range"),
        (torch.tensor([0, 1]), torch.tensor([1]), 3, "differ in length"),
        (torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]), 3, "int32 or int64"),
        (torch.tensor([0, 1]), torch.tensor([1, 0], dtype=torch.int32), 3, "share a dtype"),
        (torch.tensor([[0, 1]]), torch.tensor([[1, 0]]), 3, "1-D"),
        (torch.tensor([0, 1]), torch.tensor([1, 0]), -1, "non-negative"),
    ],
)
def test_coo_to_csr_rejects_bad_input(row, col, num_nodes, message):
    with pytest.raises(ValueError, match=message):
        ops.coo_to_csr(row, col, num_nodes)


def test_degree_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="out of range"):
        ops.degree(torch.tensor([0, 7]), 5)


def test_csr_checks_name_the_problem():
    indices = torch.tensor([1, 0, 2])
    with pytest.raises(ValueError, match="not monotone"):
        ops.check_csr(torch.tensor([0, 2, 1, 3]), indices, 3)
    with pytest.raises(ValueError, match="start at 0"):
        ops.check_csr(torch.tensor([1, 2, 3, 3]), indices, 3)
    with pytest.raises(ValueError, match="ends at 2"):
        ops.check_csr(torch.tensor([0, 1, 2, 2]), indices, 3)
    with pytest.raises(ValueError, match="out of range"):
        ops.check_csr(torch.tensor([0, 1, 2, 3]), torch.tensor([1, 0, 3]), 3)


def test_kernels_reject_bad_input_in_cpp_too():
    # The C++ entry points check structure themselves, for callers that bypass gnnscale.ops.
    with pytest.raises(ValueError, match="differ in length"):
        torch.ops.gnnscale.coo_to_csr(torch.tensor([0, 1]), torch.tensor([0]), 2, False, False, False)



def spmm_reference(indptr, indices, x, edge_weight=None, row_scale=None, col_scale=None, self_loops=False):
    """diag(row_scale) (A + self_loops * I) diag(col_scale) x in float64 with torch's sparse product."""
    n = indptr.numel() - 1
    rows = torch.repeat_interleave(torch.arange(n), indptr[1:] - indptr[:-1])
    cols = indices.long()
    values = edge_weight.double() if edge_weight is not None else torch.ones(cols.numel(), dtype=torch.float64)
    if self_loops:
        rows, cols = torch.cat([rows, torch.arange(n)]), torch.cat([cols, torch.arange(n)])
        values = torch.cat([values, torch.ones(n, dtype=torch.float64)])
    if row_scale is not None:
        values = values * row_scale.double()[rows]
    if col_scale is not None:
        values = values * col_scale.double()[cols]
    matrix = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=True)
    return torch.sparse.mm(matrix, x.double())


# Widths below, at and across the 64-column tile; 40,000 nodes take the whole-row path (a tile
# slice of that many rows no longer fits the cache budget).
@pytest.mark.parametrize("num_nodes,width", [(60, 1), (60, 64), (60, 130), (40_000, 3)])
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_scaled_spmm_matches_reference(num_nodes, width, dtype):
    gen = torch.Generator().manual_seed(width)
    row, col = random_coo(num_nodes, 6 * num_nodes, dtype, seed=width)
    indptr, indices, _ = ops.coo_to_csr(row, col, num_nodes)
    x = torch.randn(num_nodes, width, generator=gen)
    weight = torch.rand(indices.numel(), generator=gen)
    scales = torch.rand(num_nodes, generator=gen), torch.rand(num_nodes, generator=gen)
    cases = [dict(), dict(edge_weight=weight), dict(row_scale=scales[0], col_scale=scales[1], self_loops=True),
             dict(edge_weight=weight, row_scale=scales[0], self_loops=True)]
    sparse_x = (x * (torch.rand(x.shape, generator=gen) < 0.1)).to_sparse_csr()
    for case in cases:
        got = ops.scaled_spmm(indptr, indices, x, **case)
        torch.testing.assert_close(got.double(), spmm_reference(indptr, indices, x, **case), atol=1e-4, rtol=1e-4)
        got = ops.scaled_spmm(indptr, indices, sparse_x, **case)
        want = spmm_reference(indptr, indices, sparse_x.to_dense(), **case)
        torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("num_nodes,width", [(60, 130), (40_000, 3)])
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_scaled_spmm_trusting_a_sound_csr_gives_exactly_the_checked_result(num_nodes, width, dtype):
    # Tiled and whole-row products, with every operand that follows an id.
    gen = torch.Generator().manual_seed(width)
    row, col = random_coo(num_nodes, 6 * num_nodes, dtype, seed=width)
    indptr, indices, _ = ops.coo_to_csr(row, col, num_nodes)
    x = torch.randn(num_nodes, width, generator=gen)
    weight, scale = torch.rand(indices.numel(), generator=gen), torch.rand(num_nodes, generator=gen)
    results = []
    for sound_csr in (False, True):
        out = torch.empty_like(x)
        torch.ops.gnnscale.scaled_spmm(indptr, indices, weight, scale, scale, True, x, out, sound_csr)
        results.append(out)
    assert torch.equal(results[0], results[1])
    torch.testing.assert_close(results[0].double(), spmm_reference(indptr, indices, x, weight, scale, scale, True),
                               atol=1e-4, rtol=1e-4)


def test_scaled_spmm_writes_column_blocks_and_rejects_bad_operands():
    row, col = random_coo(30, 200, torch.int64, seed=3)
    indptr, indices, _ = ops.coo_to_csr(row, col, 30)
    table = torch.randn(30, 100)
    ops.scaled_spmm(indptr, indices, table[:, :10], out=table[:, 80:90])
    torch.testing.assert_close(table[:, 80:90].double(), spmm_reference(indptr, indices, table[:, :10]),
                               atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="overlap"):
        ops.scaled_spmm(indptr, indices, table[:, :10], out=table[:, 5:15])
    with pytest.raises(ValueError, match="edge_weight"):
        ops.scaled_spmm(indptr, indices, table, edge_weight=torch.ones(3))
    with pytest.raises(ValueError, match="row_scale"):
        ops.scaled_spmm(indptr, indices, table, row_scale=torch.ones(29))
    with pytest.raises(ValueError, match="x must be"):
        ops.scaled_spmm(indptr, indices, table[:20])
    bad_columns = torch.sparse_csr_tensor(torch.tensor([0, 1] + [1] * 29), torch.tensor([7]), torch.ones(1), (30, 5),
                                          check_invariants=False)
    with pytest.raises(ValueError, match="column ids"):
        ops.scaled_spmm(indptr, indices, bad_columns)
