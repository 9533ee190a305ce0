import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnscale import Graph
from gnnscale.graph import HEADER_FILE

EDGES = torch.tensor([[0, 0, 1, 2, 3, 3], [1, 2, 2, 0, 3, 1]])


def test_from_edge_index_builds_sorted_csr_with_edge_ids():
    weight = torch.tensor([0.5, 1.5, 2.5, 3.5, 4.5, 5.5])
    graph = Graph.from_edge_index(EDGES, 5, edge_weight=weight, edge_time=torch.arange(6) * 10)
    assert (graph.num_nodes, graph.num_edges) == (5, 6)
    assert graph.indptr.tolist() == [0, 2, 3, 4, 6, 6]
    assert graph.indices.tolist() == [1, 2, 2, 0, 1, 3]
    assert graph.edge_ids.tolist() == [0, 1, 2, 3, 5, 4]
    assert torch.equal(graph.edge_weight, weight[graph.edge_ids])
    assert torch.equal(graph.edge_time, graph.edge_ids * 10)
    assert graph.degree().tolist() == [2, 1, 1, 2, 0]
    assert graph.degree("in").tolist() == [1, 2, 2, 1, 0]


def test_csc_lists_in_neighbours_and_keeps_edge_attributes():
    weight = torch.arange(6, dtype=torch.float32)
    graph = Graph.from_edge_index(EDGES, 4, edge_weight=weight)
    csc = graph.csc()
    assert csc.indptr.tolist() == [0, 1, 3, 5, 6]
    assert csc.indices.tolist() == [2, 0, 3, 0, 1, 3]
    # Each transposed slot still names its original edge, and carries that edge's weight.
    for target in range(4):
        for slot in range(int(csc.indptr[target]), int(csc.indptr[target + 1])):
            eid = int(csc.edge_ids[slot])
            assert EDGES[:, eid].tolist() == [int(csc.indices[slot]), target]
            assert float(csc.edge_weight[slot]) == float(weight[eid])


def test_int32_indices_and_symmetrize():
    graph = Graph.from_edge_index(EDGES, 4, symmetrize=True, drop_duplicates=True, index_dtype=torch.int32)
    assert graph.indices.dtype == torch.int32 and graph.indptr.dtype == torch.int64
    assert graph.is_symmetric()
    assert graph.num_self_loops() == 1
    assert not Graph.from_edge_index(EDGES, 4).is_symmetric()


def test_from_scipy_and_to_pyg_round_trip():
    matrix = sp.random(30, 30, density=0.2, format="csr", random_state=1, dtype=np.float32)
    graph = Graph.from_scipy(matrix)
    assert graph.edge_weight is not None
    rebuilt = sp.csr_matrix((graph.edge_weight.numpy(), graph.indices.numpy(), graph.indptr.numpy()), shape=(30, 30))
    assert (rebuilt != matrix).nnz == 0
    data = graph.to_pyg()
    assert data.num_nodes == 30
    assert torch.equal(Graph.from_pyg(data).indices, graph.indices)
    binary = Graph.from_scipy((matrix > 0).astype(np.float32))
    assert binary.edge_weight is None


def test_from_pyg_data():
    from torch_geometric.data import Data

    graph = Graph.from_pyg(Data(edge_index=EDGES, num_nodes=6))
    assert graph.num_nodes == 6 and graph.num_edges == 6
    assert torch.equal(graph.to_pyg().edge_index, graph.edge_index())


def test_from_edge_list_keeps_string_ids(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text("# comment\nalice\tbob\nbob\tcarol\ncarol\talice\n")
    graph = Graph.from_edge_list(path, directed=False)
    assert list(graph.node_names) == ["alice", "bob", "carol"]
    assert graph.num_edges == 6 and graph.is_symmetric()


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, mmap):
    graph = Graph.from_edge_index(EDGES, 5, edge_weight=torch.rand(6), edge_time=torch.arange(6),
                                  index_dtype=torch.int32)
    graph.node_names = np.array(["a", "b", "c", "d", "e"])
    graph.save(tmp_path / "g")
    loaded = Graph.load(tmp_path / "g", mmap=mmap)
    for name in ("indptr", "indices", "edge_ids", "edge_weight", "edge_time"):
        assert torch.equal(getattr(loaded, name), getattr(graph, name)), name
    assert list(loaded.node_names) == list(graph.node_names)
    assert loaded.indices.dtype == torch.int32


@pytest.mark.parametrize("mmap", [True, False])
def test_a_graph_saved_with_its_transpose_loads_it_instead_of_transposing(tmp_path, mmap):
    graph = Graph.from_edge_index(torch.randint(0, 300, (2, 5_000)), 300, edge_weight=torch.rand(5_000),
                                  index_dtype=torch.int32)
    graph.node_names = np.arange(300) * 7
    graph.save(tmp_path / "g", with_transpose=True)
    loaded = Graph.load(tmp_path / "g", mmap=mmap)
    saved, expected = loaded._csc, graph.csc()
    assert saved is not None and loaded.csc() is saved
    for name in ("indptr", "indices", "edge_ids", "edge_weight"):
        assert torch.equal(getattr(saved, name), getattr(expected, name)), name
    assert saved.node_names is loaded.node_names
    if mmap:  # mapped from its file, so processes that load it share one copy
        array = np.load(tmp_path / "g" / "transpose" / "indices.npy", mmap_mode="r")
        assert saved.indices.untyped_storage().nbytes() == array.nbytes


def test_a_transpose_that_does_not_fit_its_graph_is_refused(tmp_path):
    graph = Graph.from_edge_index(EDGES, 4)
    graph.save(tmp_path / "g", with_transpose=True)
    other = Graph.from_edge_index(EDGES[:, :5], 4)
    other.csc().save(tmp_path / "g" / "transpose")
    with pytest.raises(ValueError, match="5 edges.*not that graph's transpose"):
        Graph.load(tmp_path / "g")
    # the same sizes, other edges: each node's in-degree tells
    shifted = Graph.from_edge_index(torch.stack([EDGES[0], (EDGES[1] + 1) % 4]), 4)
    shifted.csc().save(tmp_path / "g" / "transpose")
    with pytest.raises(ValueError, match="in-degrees differ"):
        Graph.load(tmp_path / "g", mmap=False)
    header = json.loads((tmp_path / "g" / HEADER_FILE).read_text())
    header["transpose"] = "../elsewhere"
    (tmp_path / "g" / HEADER_FILE).write_text(json.dumps(header))
    with pytest.raises(ValueError, match="'transpose' must be 'transpose'"):
        Graph.load(tmp_path / "g")


def test_mmap_load_is_lazy_and_never_writes_back(tmp_path):
    graph = Graph.from_edge_index(torch.randint(0, 1000, (2, 50_000)), 1000)
    graph.save(tmp_path / "g")
    loaded = Graph.load(tmp_path / "g", mmap=True)
    array = np.load(tmp_path / "g" / "indices.npy", mmap_mode="r")
    assert isinstance(array, np.memmap)
    # The tensor shares the mapping (no copy was made) ...
    assert loaded.indices.untyped_storage().nbytes() == array.nbytes
    # ... and writing to it changes memory only, not the file (copy-on-write).
    loaded.indices[0] = 999
    assert int(np.load(tmp_path / "g" / "indices.npy")[0]) == int(graph.indices[0])


def test_failed_save_leaves_previous_graph_intact(tmp_path, monkeypatch):
    good = Graph.from_edge_index(EDGES, 4)
    good.save(tmp_path / "g")
    calls = {"n": 0}
    real_save = np.save

    def failing_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError):
        Graph.from_edge_index(EDGES[:, :2], 4).save(tmp_path / "g")
    monkeypatch.undo()
    assert torch.equal(Graph.load(tmp_path / "g").indices, good.indices)
    assert [p.name for p in tmp_path.iterdir()] == ["g"]


def _corrupt(tmp_path, name, array):
    Graph.from_edge_index(EDGES, 4).save(tmp_path / "g")
    np.save(tmp_path / "g" / f"{name}.npy", array)
    return tmp_path / "g"


def test_load_rejects_non_monotone_indptr(tmp_path):
    with pytest.raises(ValueError, match="not monotone"):
        Graph.load(_corrupt(tmp_path, "indptr", np.array([0, 3, 2, 5, 6])))


def test_load_rejects_indptr_not_matching_indices(tmp_path):
    with pytest.raises(ValueError, match="ends at 5"):
        Graph.load(_corrupt(tmp_path, "indptr", np.array([0, 2, 3, 4, 5])))


def test_load_rejects_out_of_range_indices_when_checked(tmp_path):
    path = _corrupt(tmp_path, "indices", np.array([1, 2, 2, 0, 1, 9]))
    with pytest.raises(ValueError, match="out of range"):
        Graph.load(path, mmap=False)
    with pytest.raises(ValueError, match="out of range"):
        Graph.load(path, mmap=True, check_indices=True)


def test_load_rejects_header_mismatch_and_missing_files(tmp_path):
    Graph.from_edge_index(EDGES, 4).save(tmp_path / "g")
    header = json.loads((tmp_path / "g" / HEADER_FILE).read_text())
    header["num_edges"] = 7
    (tmp_path / "g" / HEADER_FILE).write_text(json.dumps(header))
    with pytest.raises(ValueError, match="header says"):
        Graph.load(tmp_path / "g")
    (tmp_path / "g" / "indices.npy").unlink()
    with pytest.raises(FileNotFoundError, match="indices.npy"):
        Graph.load(tmp_path / "g")
    with pytest.raises(FileNotFoundError, match="no saved graph"):
        Graph.load(tmp_path / "nothing")
    (tmp_path / "g" / HEADER_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Graph.load(tmp_path / "g")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(edge_index=torch.tensor([[0, -2], [1, 0]])), "negative"),
        (dict(edge_index=torch.tensor([[0, 4], [1, 0]]), num_nodes=3), "out of range"),
        (dict(edge_index=torch.tensor([0, 1, 2])), r"shape \[2, num_edges\]"),
        (dict(edge_index=torch.tensor([[0.0], [1.0]])), "integer"),
        (dict(edge_index=EDGES, edge_weight=torch.ones(5)), "one value per edge"),
        (dict(edge_index=EDGES, edge_weight=torch.tensor([1, 2, float("nan"), 4, 5, 6.0])), "non-finite"),
        (dict(edge_index=EDGES, edge_weight=torch.tensor([1, 2, 3, float("inf"), 5, 6.0])), "non-finite"),
        (dict(edge_index=EDGES, index_dtype=torch.float32), "index_dtype"),
    ],
)
def test_from_edge_index_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Graph.from_edge_index(**kwargs)


def test_constructor_validates_csr():
    with pytest.raises(ValueError, match="not monotone"):
        Graph(torch.tensor([0, 2, 1, 3]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        Graph(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="one value per edge"):
        Graph(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2]), edge_weight=torch.ones(2))


def _saved(tmp_path):
    Graph.from_edge_index(EDGES, 4).save(tmp_path / "g")
    return tmp_path / "g"


def _rewrite_header(directory, change):
    header = json.loads((directory / HEADER_FILE).read_text())
    change(header)
    (directory / HEADER_FILE).write_text(json.dumps(header))


@pytest.mark.parametrize("field", ["num_nodes", "num_edges", "arrays"])
def test_load_names_a_missing_header_field(tmp_path, field):
    directory = _saved(tmp_path)
    _rewrite_header(directory, lambda header: header.pop(field))
    with pytest.raises(ValueError, match=f"graph.json has no '{field}' field"):
        Graph.load(directory)


def test_load_rejects_header_fields_of_the_wrong_kind(tmp_path):
    directory = _saved(tmp_path)
    _rewrite_header(directory, lambda header: header.update(num_nodes="4"))
    with pytest.raises(ValueError, match="'num_nodes' must be a non-negative integer, got '4'"):
        Graph.load(directory)
    _rewrite_header(directory, lambda header: header.update(num_nodes=4, arrays={"indptr": "int64", "../x": "int64"}))
    with pytest.raises(ValueError, match=r"unknown arrays \['../x'\]"):
        Graph.load(directory)


def test_load_names_a_header_that_is_not_utf8(tmp_path):
    directory = _saved(tmp_path)
    (directory / HEADER_FILE).write_bytes(b'{"format": "gnnscale.Graph", "name": "\xff\xfe"}')
    with pytest.raises(ValueError, match="graph.json is not UTF-8 text"):
        Graph.load(directory)


@pytest.mark.parametrize("mmap", [True, False])
def test_load_checks_each_file_against_its_header_before_mapping_it(tmp_path, mmap):
    directory = _saved(tmp_path)
    path = directory / "indices.npy"
    data = path.read_bytes()
    path.write_bytes(data[:-8])  # the last id cut off
    with pytest.raises(ValueError, match=r"indices.npy is \d+ bytes but its header describes \d+ \(truncated\)"):
        Graph.load(directory, mmap=mmap)
    path.write_bytes(data + b"\0" * 8)
    with pytest.raises(ValueError, match="trailing bytes"):
        Graph.load(directory, mmap=mmap)
    path.write_bytes(data)
    _rewrite_header(directory, lambda header: header["arrays"].update(indices="int32"))
    with pytest.raises(ValueError, match="indices.npy holds int64 but graph.json says int32"):
        Graph.load(directory, mmap=mmap)


def test_feature_files_are_checked_against_their_header(tmp_path):
    from gnnscale.storage.unified import UnifiedTensor

    path = tmp_path / "features.npy"
    np.save(path, np.zeros((10, 32), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"features.npy is \d+ bytes but its header describes \d+ \(truncated\)"):
        UnifiedTensor.from_npy(path)
