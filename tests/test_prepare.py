"""Datasets prepared on disk within a memory budget: the external sort builds the graph
Graph.from_edge_index builds, the streamed writers the datasets the in-memory readers and
generators give, and the folder's manifest refuses a file that changed."""
import json

import numpy as np
import pytest
import torch

from gnnscale import Graph
from gnnscale.datasets import generate_preset, load_dataset, load_file, open_dataset, save_dataset
from gnnscale.datasets.external_sort import sort_capacity, BuildOptions, write_graph
from gnnscale.datasets.prepare import prepare_dataset, write_synthetic
from gnnscale.npy import FEATURE_ALIGNMENT, npy_header
from gnnscale.npy import read_npy_header
from gnnscale.programs.main import main as cli_main
from gnnscale.storage import DiskTensor

ATTRIBUTES = ("indptr", "indices", "edge_ids", "edge_weight")


def _assert_same_graph(expected: Graph, got: Graph) -> None:
    for side, (a, b) in {"csr": (expected, got), "csc": (expected.csc(), got._csc)}.items():
        for name in ATTRIBUTES:
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), (side, name)
            assert x is None or torch.equal(x, y), (side, name)


def _edges(num_nodes=400, num_edges=6000, seed=0):
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, num_nodes, num_edges), rng.integers(0, num_nodes, num_edges)
    src[:300] = 5  # a hub
    src[1000:1400], dst[1000:1400] = dst[2000:2400], src[2000:2400]  # edges listed both ways
    return src, dst, rng.random(num_edges).astype(np.float32)


def _chunks(src, dst, weight=None, size=777):
    return [(src[i:i + size], dst[i:i + size]) + (() if weight is None else (weight[i:i + size],))
            for i in range(0, src.size, size)]


@pytest.mark.parametrize("options", [
    dict(),
    dict(symmetrize=True, weighted=True),
    dict(symmetrize=True, drop_self_loops=True, drop_duplicates=True, keep_edge_ids=False),
    dict(drop_duplicates=True, weighted=True, index_dtype=torch.int32),
])
def test_the_external_sort_in_many_buckets_builds_the_in_memory_graph(tmp_path, options):
    src, dst, weight = _edges()
    options = dict(options)
    weighted = options.pop("weighted", False)
    keep_edge_ids = options.pop("keep_edge_ids", True)
    budget = 60_000
    # far fewer edges per sorted bucket than the graph has: many buckets, some split again
    assert sort_capacity(budget, BuildOptions(weighted=weighted, **options)) * 5 < src.size
    files = write_graph(_chunks(src, dst, weight if weighted else None), 400, tmp_path / "graph",
                        memory_bytes=budget, weighted=weighted, keep_edge_ids=keep_edge_ids, **options)
    expected = Graph.from_edge_index(torch.from_numpy(np.stack([src, dst])), 400,
                                     edge_weight=torch.from_numpy(weight) if weighted else None, **options)
    if not keep_edge_ids:
        expected.edge_ids = None
    _assert_same_graph(expected, Graph.load(tmp_path / "graph", mmap=False))
    # file for file what Graph.save writes
    expected.save(tmp_path / "saved", with_transpose=True)
    for name, entry in files.items():
        assert (tmp_path / "saved" / name).read_bytes() == (tmp_path / "graph" / name).read_bytes(), name
        assert (tmp_path / "graph" / name).stat().st_size == entry["bytes"], name


def test_an_edge_listed_both_ways_keeps_the_order_of_the_in_memory_kernel(tmp_path):
    # Row 2 holds the input edge 2->1 (id 1) and the reverse of 1->2 (id 0): arrival order, not id order.
    edge_index = torch.tensor([[1, 2], [2, 1]])
    write_graph([(edge_index[0], edge_index[1])], 3, tmp_path / "g", memory_bytes=1 << 20, symmetrize=True)
    expected = Graph.from_edge_index(edge_index, 3, symmetrize=True)
    assert expected.edge_ids.tolist() == [0, 1, 1, 0]
    _assert_same_graph(expected, Graph.load(tmp_path / "g", mmap=False))


def test_an_edge_list_prepared_within_a_small_budget_equals_loading_it(tmp_path):
    rng = np.random.default_rng(1)
    ids = rng.integers(10, 900, (2, 20000)) * 3  # sparse ids: nodes are renumbered
    lines = ["# a comment", "src dst weight"] + [f"{a}\t{b}\t{w:.3f}" for a, b, w in zip(*ids, rng.random(20000))]
    path = tmp_path / "edges.tsv"
    path.write_text("\n".join(lines) + "\n")
    prepare_dataset(str(path), tmp_path / "out", memory_gib=0.0002)  # 210 KB for a 600 KB edge list
    expected, got = load_file(path), load_dataset(str(tmp_path / "out"))
    _assert_same_graph(expected.graph, got.graph)
    # the list repeats edges and holds self-loops: both readers keep each other edge once each way
    distinct = {frozenset(pair) for pair in ids.T.tolist() if pair[0] != pair[1]}
    assert 0 < len(distinct) < ids.shape[1] - 100 and got.graph.num_edges == 2 * len(distinct)
    assert np.array_equal(expected.graph.node_names, got.graph.node_names)
    assert got.name == "edges" and got.features is None


@pytest.mark.parametrize("first_name_at", [0, 15000])
def test_an_edge_list_of_names_streams_into_the_graph_loading_it_builds(tmp_path, first_name_at):
    """String ids anywhere in the list, in the first chunk or far past it (the integers read
    before are then read again as strings): the nodes are the names in sorted order, as in memory."""
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 700, (2, 20000))
    names = [[str(v) for v in row] for row in ids]
    names[0][first_name_at] = "user-alice"
    names[1][first_name_at + 1] = "ünïcode bob"  # a space inside a comma-separated field
    lines = [f"{a},{b},{w:.2f}" for a, b, w in zip(*names, rng.random(20000))]
    path = tmp_path / "edges.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepare_dataset(str(path), tmp_path / "out", memory_gib=0.0002)  # chunks of 4 KiB of text
    expected, got = load_file(path), load_dataset(str(tmp_path / "out"))
    _assert_same_graph(expected.graph, got.graph)
    assert got.graph.node_names.dtype.kind == "U" and np.array_equal(expected.graph.node_names, got.graph.node_names)
    assert "ünïcode bob" in set(got.graph.node_names) and list(got.graph.node_names) == sorted(got.graph.node_names)
    assert not list((tmp_path / "out").rglob(".edges.*"))  # the scratch folder is gone


def test_an_edge_list_of_node_numbers_refuses_ids_out_of_range(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text("0 1\n1 2\n2 7\n")
    prepare_dataset(str(path), tmp_path / "ok", num_nodes=8, directed=True)
    graph = load_dataset(str(tmp_path / "ok")).graph
    assert (graph.num_nodes, graph.num_edges, graph.node_names) == (8, 3, None)
    with pytest.raises(ValueError, match=r"node id 7, outside \[0, 5\)"):
        prepare_dataset(str(path), tmp_path / "bad", num_nodes=5)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="out of range for 5 nodes"):
        write_graph([(np.array([0, 1]), np.array([1, 5]))], 5, tmp_path / "g", memory_bytes=1 << 20)


def test_the_streamed_generator_writes_the_in_memory_dataset(tmp_path):
    for preset, scale in (("products", 0.002), ("papers100M", 0.00002)):
        expected = generate_preset(preset, scale=scale, seed=2)
        write_synthetic(preset, tmp_path / preset, scale=scale, seed=2, memory_gib=0.0005)
        got = open_dataset(tmp_path / preset, verify=True)
        _assert_same_graph(expected.graph, got.graph)
        assert torch.equal(expected.features, got.features) and torch.equal(expected.labels, got.labels)
        assert sorted(got.splits) == sorted(expected.splits)
        assert all(torch.equal(expected.splits[k], got.splits[k]) for k in expected.splits)
        assert (got.name, got.num_classes) == (expected.name, expected.num_classes)


def test_a_flipped_byte_is_refused_by_the_full_check_naming_the_file(tmp_path, capsys):
    write_synthetic("arxiv", tmp_path / "d", scale=0.005, memory_gib=0.01)
    assert cli_main(["prepare", "--verify", str(tmp_path / "d")]) == 0
    assert "match their size and sha256" in capsys.readouterr().out
    target = tmp_path / "d" / "graph" / "transpose" / "indices.npy"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x10
    target.write_bytes(bytes(data))
    load_dataset(str(tmp_path / "d"))  # sizes still match: the cheap check at open passes
    with pytest.raises(ValueError, match=r"transpose/indices.npy: its sha256 checksum differs"):
        open_dataset(tmp_path / "d", verify=True)
    assert cli_main(["prepare", "--verify", str(tmp_path / "d")]) == 2
    assert "transpose/indices.npy: its sha256 checksum differs" in capsys.readouterr().err
    target.write_bytes(bytes(data[:-8]))  # a size that differs is refused at open
    with pytest.raises(ValueError, match="indices.npy is .* bytes but"):
        load_dataset(str(tmp_path / "d"))


def test_features_start_at_a_block_boundary_and_read_back_everywhere(tmp_path):
    dataset = generate_preset("arxiv", scale=0.005, seed=1)
    save_dataset(dataset, tmp_path / "saved")
    write_synthetic("arxiv", tmp_path / "streamed", scale=0.005, seed=1, memory_gib=0.01)
    for folder in ("saved", "streamed"):
        path = tmp_path / folder / "features.npy"
        shape, dtype, offset = read_npy_header(path)
        assert offset % FEATURE_ALIGNMENT == 0 and offset > 0
        assert torch.equal(torch.from_numpy(np.load(path)), dataset.features)
        opened = load_dataset(str(tmp_path / folder))
        assert torch.equal(opened.features, dataset.features) and opened.feature_file == path
        index = torch.tensor([0, 5, 3, 5, shape[0] - 1, 77])
        table = DiskTensor(path)  # direct I/O in aligned blocks
        try:
            assert torch.equal(table.gather(index), dataset.features[index])
        finally:
            table.close()


def test_headers_other_than_the_features_are_those_np_save_writes(tmp_path):
    for array in (np.arange(7, dtype=np.int64), np.zeros((3, 5), np.float32), np.arange(10**6, dtype=np.int32)):
        np.save(tmp_path / "a.npy", array)
        expected = (tmp_path / "a.npy").read_bytes()
        header = npy_header(array.dtype, array.shape)
        assert expected[:len(header)] == header and len(expected) == len(header) + array.nbytes
        # the length of a header does not depend on the number of rows (it is rewritten in place)
        assert len(npy_header(array.dtype, (0,) + array.shape[1:])) == len(header)


def test_bad_input_is_refused_with_a_clear_error(tmp_path):
    src, dst, _ = _edges()
    for budget in (0, -5, 1.5):
        with pytest.raises(ValueError, match="memory budget must be a positive number of bytes"):
            write_graph(_chunks(src, dst), 400, tmp_path / "g", memory_bytes=budget)
    for gib in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="memory_gib must be a positive number"):
            prepare_dataset("synthetic-arxiv", tmp_path / "d", memory_gib=gib)
        with pytest.raises(ValueError, match="memory_gib must be a positive number"):
            write_synthetic("arxiv", tmp_path / "d", memory_gib=gib)
    with pytest.raises(FileNotFoundError, match="no-such.tsv"):
        prepare_dataset(str(tmp_path / "no-such.tsv"), tmp_path / "d")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="a-file exists and is not a folder"):
        prepare_dataset("synthetic-arxiv", tmp_path / "a-file", scale=0.001)
    with pytest.raises(ValueError, match="node 5 has 3.. edges, more than a memory budget"):
        write_graph(_chunks(src, dst), 400, tmp_path / "g2", memory_bytes=10_000)
    with pytest.raises(ValueError, match=r"must be a pair \(src, dst, weight\)"):
        write_graph(_chunks(src, dst), 400, tmp_path / "g3", memory_bytes=1 << 20, weighted=True)
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        prepare_dataset("synthetic-mag", tmp_path / "d")
    path = tmp_path / "strings.txt"
    path.write_text("a b\nb c\n")
    with pytest.raises(ValueError, match="line 1 has node id 'a'; ids streamed in chunks must be integers"):
        prepare_dataset(str(path), tmp_path / "d", num_nodes=3)  # node numbers, not names
    assert not (tmp_path / "d").exists()


def test_the_prepare_command_writes_a_folder_load_dataset_opens(tmp_path, capsys):
    out = tmp_path / "arxiv"
    assert cli_main(["prepare", "--dataset", "synthetic-arxiv", "--scale", "0.004", "--out", str(out),
                     "--memory-gib", "0.01"]) == 0
    dataset = load_dataset(str(out))
    expected = generate_preset("arxiv", scale=0.004)
    assert torch.equal(dataset.graph.indices, expected.graph.indices)
    header = json.loads((out / "dataset.json").read_text())
    assert header["version"] == 2 and "graph/transpose/edge_ids.npy" in header["files"]
    assert cli_main(["prepare", "--dataset", "synthetic-arxiv", "--out", str(out), "--memory-gib", "0"]) == 2
    assert "memory_gib must be a positive number" in capsys.readouterr().err
