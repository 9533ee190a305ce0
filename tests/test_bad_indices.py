"""Corrupt topology (ids out of range, broken row pointers) and absurd output sizes reach the
kernels only to be refused with a ValueError, never a crash or unbounded memory.

Calls that would crash the process are run in a fresh interpreter, so a regression fails its
test instead of killing the suite: each script prints the outcome of every call it makes.
"""
import subprocess
import sys
import textwrap

import pytest
import torch

from gnnscale import Graph, ops
from gnnscale.sampling import NeighborSampler

PRELUDE = """
import resource, sys
import numpy as np
import torch
from gnnscale import Graph, ops

def outcome(name, call):
    try:
        call()
    except ValueError as error:
        print(f"{name}: ValueError: {error}", flush=True)
    else:
        print(f"{name}: no error", flush=True)
"""


def run_isolated(script: str, *, memory_limit_gib: int = 0) -> str:
    """stdout of ``script`` run after PRELUDE in a fresh interpreter; asserts it exited normally
    (a negative return code is a death by signal, e.g. -11 for a segfault)."""
    limit = (f"resource.setrlimit(resource.RLIMIT_AS, ({memory_limit_gib} << 30, {memory_limit_gib} << 30))\n"
             if memory_limit_gib else "")
    result = subprocess.run([sys.executable, "-c", PRELUDE + limit + textwrap.dedent(script)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exited with {result.returncode}:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


def outcomes(stdout: str) -> dict:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def test_a_loaded_graph_with_ids_out_of_range_is_refused_by_every_kernel(tmp_path):
    # Graph.load(mmap) skips the O(E) id check by default: the kernels must catch the ids.
    Graph.from_edge_index(torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]]), 3).save(tmp_path / "g")
    got = outcomes(run_isolated(f"""
        from gnnscale.datasets.base import NodeDataset
        from gnnscale.train import FullGraphNodeTask, Trainer
        np.save({str(tmp_path / "g" / "indices.npy")!r}, np.array([1, 2, 700000000, 1]))

        def graph():
            return Graph.load({str(tmp_path / "g")!r})

        def full_graph_training():
            splits = {{name: torch.tensor([i]) for i, name in enumerate(("train", "valid", "test"))}}
            data = NodeDataset("corrupt", graph(), torch.randn(3, 4), torch.tensor([0, 1, 0]), splits, num_classes=2)
            Trainer(FullGraphNodeTask(data, "sage", hidden=4), epochs=1, progress=False).fit()

        outcome("csc", lambda: graph().csc())
        outcome("spmm", lambda: ops.scaled_spmm(graph().indptr, graph().indices, torch.randn(3, 4)))
        outcome("sparse_csr", lambda: graph().sparse_csr() @ torch.randn(3, 4))
        outcome("train_full_graph", full_graph_training)
    """))
    assert got["csc"] == "ValueError: indices hold 700000000 at position 2, out of range for 3 columns"
    assert got["spmm"] == "ValueError: indices hold 700000000 at position 2, out of range for 3 nodes"
    assert got["sparse_csr"] == "ValueError: indices holds id 700000000, out of range for 3 nodes"
    assert got["train_full_graph"].startswith("ValueError: indices hold 700000000 at position 2")


def test_kernels_refuse_ids_out_of_range():
    got = outcomes(run_isolated("""
        indptr = torch.tensor([0, 1, 2, 3])
        bad = torch.tensor([1, 2, 1 << 40])
        negative = torch.tensor([1, -5, 0], dtype=torch.int32)
        x = torch.randn(3, 4)
        outcome("csr_to_csc", lambda: ops.csr_to_csc(indptr, bad, 3))
        outcome("csr_to_csc negative", lambda: ops.csr_to_csc(indptr, negative, 3))
        outcome("scaled_spmm", lambda: ops.scaled_spmm(indptr, bad, x))
        outcome("scaled_spmm sparse x", lambda: ops.scaled_spmm(indptr, bad, x.to_sparse_csr()))
        # Walks shorter than the graph check the ids they step to; longer ones check the graph first.
        outcome("random_walk", lambda: ops.random_walk(indptr, bad, torch.tensor([2]), 2))
        outcome("node2vec walk", lambda: ops.random_walk(indptr, bad, torch.tensor([2]), 2, p=0.5, q=2.0))
        outcome("long walks", lambda: ops.random_walk(indptr, bad, torch.tensor([0, 1, 2]), 5))
        built = Graph.from_edge_index(torch.tensor([[0, 1, 2], [1, 2, 0]]), 3)  # found sound as it is built
        built.indices[2] = 1 << 40  # ... and changed in place after that
        outcome("walk on a changed graph", lambda: ops.random_walk(built.indptr, built.indices, torch.tensor([2]), 2))
        outcome("neighbor_sample", lambda: ops.neighbor_sample(indptr, bad, torch.tensor([2]), [2]))
        outcome("hop_token_sample", lambda: ops.hop_token_sample(indptr, bad, torch.tensor([2]), 3, [-1]))
        outcome("degree", lambda: torch.ops.gnnscale.degree(bad, 3))
        outcome("coo_to_csr", lambda: torch.ops.gnnscale.coo_to_csr(bad, indptr[:3], 3, False, False, False))
        outcome("gather_dot", lambda: ops.gather_dot(torch.randn(4, 8), torch.tensor([[0, 4]]), torch.randn(1, 2, 8)))
        outcome("gather_rows", lambda: torch.ops.gnnscale.gather_rows(x, bad, None, torch.empty(3, 4), 1, True))
    """))
    assert got["csr_to_csc"] == "ValueError: indices hold 1099511627776 at position 2, out of range for 3 columns"
    assert got["csr_to_csc negative"] == "ValueError: indices hold -5 at position 1, out of range for 3 columns"
    assert got["scaled_spmm"] == "ValueError: indices hold 1099511627776 at position 2, out of range for 3 nodes"
    assert got["scaled_spmm sparse x"] == got["scaled_spmm"]
    for walk in ("random_walk", "node2vec walk"):
        assert got[walk] == "ValueError: indices hold 1099511627776 at position 2, out of range for 3 nodes"
    assert got["long walks"] == "ValueError: indices holds id 1099511627776, out of range for 3 nodes"
    assert got["walk on a changed graph"] == got["random_walk"]
    assert got["neighbor_sample"] == got["random_walk"]
    assert got["hop_token_sample"] == got["random_walk"]
    assert got["degree"] == "ValueError: index holds 1099511627776 at position 2, out of range for 3 nodes"
    assert got["coo_to_csr"] == "ValueError: row holds 1099511627776 at position 2, out of range for 3 nodes"
    assert "out of range for a table of 4 rows" in got["gather_dot"]
    assert got["gather_rows"] == "ValueError: index holds 1099511627776 at position 2, out of range for 3 rows"


def test_csr_to_csc_refuses_an_id_just_past_the_last_column():
    # Past 4095 columns, columns are counted in buckets of several; an id past the last column
    # can fall in the last, partly used bucket.
    got = outcomes(run_isolated("""
        for num_cols in (4097, 5001):
            outcome(str(num_cols), lambda: ops.csr_to_csc(torch.tensor([0, 2]), torch.tensor([0, num_cols]), num_cols))
    """))
    for num_cols in (4097, 5001):
        assert got[str(num_cols)] == (f"ValueError: indices hold {num_cols} at position 1, "
                                      f"out of range for {num_cols} columns")


def recording_trust_of(kernel: str) -> str:
    """Script lines that route ``ops``' calls of ``kernel`` through ``recording``, which notes in
    ``recording.trusted`` the flag each call passes last: whether the kernel trusts its CSR."""
    return textwrap.dedent(f"""
        class RecordingOps:
            def __init__(self):
                self.trusted = []

            def __getattr__(self, name):
                op = getattr(torch.ops.gnnscale, name)
                if name != "{kernel}":
                    return op

                def recorded(*args):
                    self.trusted.append(args[-1])
                    return op(*args)
                return recorded

        recording = ops.kernels.OPS = RecordingOps()
    """)


def test_csr_to_csc_trusts_only_a_csr_known_sound():
    # The transposition skips its row and id checks on a square CSR built by Graph or read whole
    # before, and checks any other; trusting a changed graph would write far outside its counters.
    got = outcomes(run_isolated(recording_trust_of("csr_to_csc") + textwrap.dedent("""
        results = []

        def transpose(name, indptr, indices, num_cols=3):
            recording.trusted.clear()
            outcome(name, lambda: results.append(ops.csr_to_csc(indptr, indices, num_cols)))
            print(f"{name} trusted: {recording.trusted}", flush=True)

        built = Graph.from_edge_index(torch.tensor([[0, 1, 2], [1, 2, 0]]), 3)
        transpose("built", built.indptr, built.indices)
        indptr, indices = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 0])
        transpose("wide", indptr, indices, num_cols=4)
        transpose("first", indptr, indices)
        transpose("again", indptr, indices)
        print(f"same result: {all(torch.equal(a, b) for a, b in zip(results[-1], results[-2]))}")
        print(f"same as built: {all(torch.equal(a, b) for a, b in zip(results[-1], results[0]))}")
        transpose("transposed", results[-1][0], results[-1][1])
        bad = torch.tensor([1, 2, 1 << 40])
        transpose("bad", indptr, bad)
        transpose("bad again", indptr, bad)
        built.indices[2] = 1 << 40
        transpose("changed", built.indptr, built.indices)
        unsorted = torch.tensor([0, 2, 1, 3])
        transpose("bad rows", unsorted, indices)
        transpose("bad rows again", unsorted, indices)
    """)))
    for name, trusted in [("built", True), ("wide", False), ("first", False), ("again", True), ("transposed", True)]:
        assert got[name] == "no error", name
        assert got[f"{name} trusted"] == f"[{trusted}]", name
    assert got["same result"] == "True"
    assert got["same as built"] == "True"
    for name in ("bad", "bad again", "changed"):
        assert got[name] == "ValueError: indices hold 1099511627776 at position 2, out of range for 3 columns", name
        assert got[f"{name} trusted"] == "[False]", name
    for name in ("bad rows", "bad rows again"):
        assert got[name] == "ValueError: indptr is not monotone: indptr[2] = 1 < indptr[1] = 2", name
        assert got[f"{name} trusted"] == "[False]", name


def test_scaled_spmm_trusts_only_a_csr_known_sound():
    # The product skips its id checks on a CSR built by Graph or read whole by an earlier product,
    # and checks any other; trusting a changed graph would read far outside x and crash.
    got = outcomes(run_isolated(recording_trust_of("scaled_spmm") + textwrap.dedent("""
        x = torch.randn(3, 4)
        products = []

        def product(name, indptr, indices, width=4):
            recording.trusted.clear()
            outcome(name, lambda: products.append(ops.scaled_spmm(indptr, indices, x[:, :width])))
            print(f"{name} trusted: {recording.trusted}", flush=True)

        built = Graph.from_edge_index(torch.tensor([[0, 1, 2], [1, 2, 0]]), 3)
        product("built", built.indptr, built.indices)
        indptr, indices = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 0])
        product("width 0", indptr, indices, width=0)
        product("first", indptr, indices)
        product("again", indptr, indices)
        print(f"same result: {torch.equal(products[-1], products[-2])}")
        bad = torch.tensor([1, 2, 1 << 40])
        product("bad", indptr, bad)
        product("bad again", indptr, bad)
        built.indices[2] = 1 << 40
        product("changed", built.indptr, built.indices)
    """)))
    for name, trusted in [("built", True), ("width 0", False), ("first", False), ("again", True)]:
        assert got[name] == "no error", name
        assert got[f"{name} trusted"] == f"[{trusted}]", name
    assert got["same result"] == "True"
    for name in ("bad", "bad again", "changed"):
        assert got[name] == "ValueError: indices hold 1099511627776 at position 2, out of range for 3 nodes", name
        assert got[f"{name} trusted"] == "[False]", name


BROKEN_ROW_POINTERS = {
    "non-monotone": ([0, 3, 1, 3], "indptr is not monotone: indptr[2] = 1 < indptr[1] = 3"),
    "wrong first": ([1, 2, 3, 3], "indptr must start at 0, starts at 1"),
    "wrong last": ([0, 1, 2, 9], "indptr ends at 9 but there are 3 indices"),
    "one row short": ([0, 2], "indptr ends at 2 but there are 3 indices"),
}


def test_kernels_refuse_broken_row_pointers():
    got = outcomes(run_isolated(f"""
        indices = torch.tensor([1, 2, 0])
        for case, (values, _) in {BROKEN_ROW_POINTERS!r}.items():
            indptr = torch.tensor(values)
            n = len(values) - 1
            outcome(f"csr_to_csc {{case}}", lambda: ops.csr_to_csc(indptr, indices, 3))
            outcome(f"negative_tails {{case}}", lambda: ops.negative_tails(indptr, indices, torch.arange(n), 4))
            outcome(f"scaled_spmm {{case}}", lambda: torch.ops.gnnscale.scaled_spmm(
                indptr, indices, None, None, None, False, torch.randn(n, 2), torch.empty(n, 2)))
    """))
    for case, (_, message) in BROKEN_ROW_POINTERS.items():
        for op in ("csr_to_csc", "negative_tails", "scaled_spmm"):
            assert got[f"{op} {case}"] == f"ValueError: {message}", (op, case)


def test_sampling_kernels_check_each_row_they_read():
    # The ends of indptr are right, a row in the middle is not: only the rows read are checked.
    got = outcomes(run_isolated("""
        indptr, indices = torch.tensor([0, 5, 1, 3]), torch.tensor([1, 2, 0])
        events = torch.arange(3)
        times = torch.arange(3, dtype=torch.float64)
        outcome("negative_tails", lambda: ops.negative_tails(indptr, indices, torch.tensor([0]), 4))
        outcome("neighbor_sample", lambda: ops.neighbor_sample(indptr, indices, torch.tensor([1]), [2]))
        outcome("random_walk", lambda: ops.random_walk(indptr, indices, torch.tensor([0]), 2))
        outcome("hop_token_sample", lambda: ops.hop_token_sample(indptr, indices, torch.tensor([1]), 3, [2]))
        outcome("temporal", lambda: ops.temporal_neighbor_sample(indptr, indices, events, times, torch.tensor([0]),
                                                                 torch.tensor([9.0]), 2))
    """))
    assert got["negative_tails"] == "ValueError: indptr[1] = 5 points past the 3 indices"
    assert got["random_walk"] == got["negative_tails"]
    assert got["temporal"] == got["negative_tails"]
    assert got["neighbor_sample"] == "ValueError: indptr is not monotone: indptr[2] = 1 < indptr[1] = 5"
    assert got["hop_token_sample"] == got["neighbor_sample"]


def test_a_sampler_over_a_graph_with_bad_ids_fails_at_construction():
    broken = Graph(torch.tensor([0, 1, 2]), torch.tensor([1, 7]), validate=False)
    with pytest.raises(ValueError, match="indices hold 7 at position 1, out of range for 2"):
        NeighborSampler(broken, [1])


def test_sparse_csr_checks_an_unchecked_graph_once():
    # torch's sparse product trusts the CSR it is given; a graph built without validation is checked first.
    good = Graph(torch.tensor([0, 1, 2]), torch.tensor([1, 0]), validate=False)
    assert torch.equal(good.sparse_csr().to_dense(), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    broken = Graph(torch.tensor([0, 1, 2]), torch.tensor([1, 9]), validate=False)
    with pytest.raises(ValueError, match="holds id 9, out of range for 2 nodes"):
        broken.sparse_csr()
    good.indices[1] = 5  # modified in place after the check: checked again
    with pytest.raises(ValueError, match="holds id 5"):
        good.sparse_csr()


def test_a_huge_fanout_with_replacement_is_refused_before_allocating():
    graph = Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 2)
    with pytest.raises(ValueError, match=r"fanout 1099511627776 with replacement .* more than the 2147483648"):
        NeighborSampler(graph, [2**40], replace=True)
    NeighborSampler(graph, [2**40])  # without replacement a fanout is bounded by the degree


def test_the_kernel_refuses_a_hop_too_large_to_hold():
    # 2 seeds x 2^31 edges each: a memory cap makes a regression fail fast instead of exhausting the machine.
    got = outcomes(run_isolated("""
        indptr, indices = torch.tensor([0, 1, 2]), torch.tensor([1, 0])
        outcome("hop", lambda: ops.neighbor_sample(indptr, indices, torch.tensor([0, 1]), [2**31], replace=True))
        outcome("walk", lambda: ops.random_walk(indptr, indices, torch.tensor([0, 1]), 2**31))
        outcome("negatives", lambda: ops.negative_tails(indptr, indices, torch.tensor([0, 1]), 2**31))
    """, memory_limit_gib=8))
    assert got["hop"] == ("ValueError: refusing to produce 2 x 2147483648 edges sampled with replacement (frontier "
                          "nodes x fanout): more than the 2147483648 entries one call may produce")
    assert got["walk"].startswith("ValueError: refusing to produce 2 x 2147483648 walk steps")
    assert got["negatives"].startswith("ValueError: refusing to produce 2 x 2147483648 negatives")


def test_attention_rows_other_than_padding_must_name_rows():
    table, vectors = torch.randn(4, 8), torch.randn(1, 2, 8)
    assert torch.equal(ops.gather_dot(table, torch.tensor([[-1, 0]]), vectors)[0, 0], torch.zeros(2))
    with pytest.raises(ValueError, match="rows holds -5: ids must be rows of the table or -1"):
        ops.gather_dot(table, torch.tensor([[-5, 0]]), vectors)
    with pytest.raises(ValueError, match="rows hold -5 at position 0, out of range for 4 rows of the table"):
        torch.ops.gnnscale.gather_weighted_sum(table, torch.tensor([[-5, 0]]), torch.randn(1, 2, 2))


def test_skipgram_refuses_a_negative_table_naming_no_node():
    got = outcomes(run_isolated("""
        vertex, context = torch.randn(3, 4), torch.randn(3, 4)
        before = vertex.clone(), context.clone()
        prob, alias = ops.alias_table(torch.tensor([1.0, 2.0, 3.0]))
        alias[0] = 3
        pairs = torch.tensor([[0, 1], [1, 2]] * 100)
        outcome("sgns_train", lambda: ops.sgns_train(vertex, context, pairs, (prob, alias)))
        print("untouched:", torch.equal(vertex, before[0]) and torch.equal(context, before[1]))
        keep = torch.ones(3, dtype=torch.float64)
        outcome("walk_pairs", lambda: torch.ops.gnnscale.walk_pairs(torch.tensor([[0, 7]]), 1, False, keep, 0))
    """))
    assert got["sgns_train"] == "ValueError: the negative table's aliases hold 3 at position 0, out of range for 3 nodes"
    assert got["untouched"] == "True"  # refused before any row was written
    assert got["walk_pairs"] == "ValueError: walks hold 7 at position 1, out of range for 3 nodes of keep_prob"


def test_a_token_cache_with_unreadable_settings_is_rebuilt(tmp_path):
    from gnnscale.storage.tokens import TokenTable

    graph = Graph.from_edge_index(torch.tensor([[0, 1, 2], [1, 2, 0]]), 3, symmetrize=True)
    features = torch.randn(3, 4)
    first = TokenTable.build(graph, features, num_tokens=3, hops=1, cache_dir=tmp_path)
    (settings,) = tmp_path.glob("tokens-*/settings.json")
    settings.write_bytes(b"\xff\xfe not text")
    again = TokenTable.build(graph, features, num_tokens=3, hops=1, cache_dir=tmp_path)
    assert torch.equal(again.neighbours.data, first.neighbours.data)
    assert settings.read_text().startswith("{")
