import hashlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import torch

from gnnscale import load_dataset
from gnnscale.programs.main import main as cli_main
from gnnscale.datasets import (LinkDataset, NodeDataset, TemporalDataset, data_root, generate_preset,
                               generate_synthetic, read_edge_list)
from gnnscale.graph import Graph


def test_cora_public_split(data_root):
    cora = load_dataset("cora", root=data_root)
    assert isinstance(cora, NodeDataset)
    assert (cora.graph.num_nodes, cora.graph.num_edges) == (2708, 10556)
    assert cora.graph.is_symmetric()
    assert tuple(cora.features.shape) == (2708, 1433) and cora.num_classes == 7
    assert {k: len(v) for k, v in cora.splits.items()} == {"train": 140, "valid": 500, "test": 1000}
    # Public split: the first 140 nodes train, 140..639 validate, test ids come from the file.
    assert cora.splits["train"].tolist() == list(range(140))
    assert cora.splits["valid"].tolist() == list(range(140, 640))
    assert torch.bincount(cora.labels, minlength=7).tolist() == [351, 217, 418, 818, 426, 298, 180]


def test_cora_matches_pyg_reader(data_root):
    # The reference unpickles fully, so it may only read the published files.
    raw = data_root / "planetoid" / "Cora" / "raw"
    published = dict(line.split()[::-1] for line in (data_root / "SHA256SUMS").read_text().splitlines())
    for path in raw.iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == published[f"./planetoid/Cora/raw/{path.name}"]
    from torch_geometric.io import read_planetoid_data

    reference = read_planetoid_data(str(raw), "cora")
    cora = load_dataset("cora", root=data_root)
    expected = Graph.from_edge_index(reference.edge_index, reference.num_nodes)
    assert torch.equal(cora.graph.indptr, expected.indptr) and torch.equal(cora.graph.indices, expected.indices)
    assert torch.equal(cora.features, reference.x) and torch.equal(cora.labels, reference.y)
    for split, mask in (("train", "train_mask"), ("valid", "val_mask"), ("test", "test_mask")):
        assert torch.equal(cora.splits[split], torch.nonzero(getattr(reference, mask)).flatten())


def test_blogcatalog_mat(data_root):
    blog = load_dataset("blogcatalog", root=data_root)
    assert blog.graph.num_nodes == 10312 and blog.graph.num_edges == 2 * 333983
    assert blog.graph.is_symmetric() and blog.graph.num_self_loops() == 0
    assert blog.multilabel and tuple(blog.labels.shape) == (10312, 39) and blog.num_classes == 39
    assert int(blog.labels.sum(1).min()) >= 1  # every node has at least one group


def test_jodie_wikipedia_events(data_root):
    wiki = load_dataset("wikipedia", root=data_root)
    assert isinstance(wiki, TemporalDataset)
    assert wiki.num_events == 157474 and wiki.num_nodes == 9227
    assert int(wiki.src.max()) == 8226 and int(wiki.dst.min()) == 8227  # users, then 1000 pages
    assert bool((wiki.t[1:] >= wiki.t[:-1]).all())
    assert sum(len(v) for v in wiki.splits.values()) == wiki.num_events
    assert wiki.graph.edge_time is not None and wiki.graph.num_edges == wiki.num_events


def test_ogbl_ddi_through_ogb(data_root, tmp_path):
    ddi = load_dataset("ogbl-ddi", root=data_root)
    assert isinstance(ddi, LinkDataset) and ddi.metric == "hits@20"
    assert ddi.graph.num_nodes == 4267
    assert ddi.edge_split["train"]["edge"].shape == (1067911, 2)
    assert ddi.edge_split["valid"]["edge"].shape == (133489, 2)
    assert ddi.edge_split["test"]["edge"].shape == (133489, 2)
    assert ddi.edge_split["valid"]["edge_neg"].shape[1] == 2
    assert ddi.graph.num_edges == 2 * 1067911 and ddi.graph.is_symmetric()
    # A second load reads ogb's processed files from the cache, not the read-only data root.
    again = load_dataset("ogbl-ddi", root=data_root)
    assert torch.equal(again.graph.indices, ddi.graph.indices)
    assert not (data_root / "ogbl_ddi" / "processed").exists()


def test_ogb_refuses_unknown_pickles(data_root, tmp_path):
    root = tmp_path / "root"
    folder = root / "ogbl_ddi"
    (folder / "split" / "target").mkdir(parents=True)
    for entry in ("raw", "mapping", "RELEASE_v1.txt"):
        (folder / entry).symlink_to(data_root / "ogbl_ddi" / entry)
    for split in ("train", "test"):
        (folder / "split" / "target" / f"{split}.pt").symlink_to(data_root / "ogbl_ddi" / "split" / "target" / f"{split}.pt")
    # An old-style pickle of a numpy array whose checksum gnnscale does not know.
    torch.save({"edge": np.zeros((3, 2), dtype=np.int64)}, folder / "split" / "target" / "valid.pt",
               _use_new_zipfile_serialization=False, pickle_protocol=4)
    with pytest.raises(ValueError, match="checksum"):
        load_dataset("ogbl-ddi", root=root)


def test_missing_dataset_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="ind.cora"):
        load_dataset("cora", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="ogbl_ddi"):
        load_dataset("ogbl-ddi", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="blogcatalog.mat"):
        load_dataset("blogcatalog", root=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("no-such-dataset", root=tmp_path)


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("GNNSCALE_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("GNNSCALE_DATA")
    assert data_root().name == "datasets"


@pytest.mark.parametrize("sep", ["\t", " ", ",", "  "])
def test_edge_list_separators_and_integer_ids(tmp_path, sep):
    path = tmp_path / "edges.txt"
    path.write_text(f"10{sep}2\n2{sep}7\n# a comment\n\n7{sep}10\n")
    edges = read_edge_list(path)
    assert edges.node_names.tolist() == [2, 7, 10]  # integer ids sort numerically
    assert edges.edge_index.tolist() == [[2, 0, 1], [0, 1, 2]]
    assert edges.weight is None


def test_edge_list_weights_and_string_ids(tmp_path):
    path = tmp_path / "edges.csv"
    path.write_text("b,a,0.5\na,c,2\n")
    edges = read_edge_list(path)
    assert edges.node_names.tolist() == ["a", "b", "c"]
    assert edges.weight.tolist() == [0.5, 2.0]
    assert read_edge_list(path, weighted=False).weight is None


def test_graphs_of_named_nodes_save_and_load_their_names(tmp_path):
    from gnnscale.datasets.edge_list import edge_list_graph

    path = tmp_path / "edges.txt"
    path.write_text("alice bob\nbob carol\ncarol alice\ndavid alice\n")
    graph = edge_list_graph(path)
    graph.save(tmp_path / "g")
    assert Graph.load(tmp_path / "g").node_names.tolist() == ["alice", "bob", "carol", "david"]
    objects = Graph.from_edge_index(torch.tensor([[0], [1]]), 2, node_names=np.array(["x", "y"], dtype=object))
    objects.save(tmp_path / "objects")  # pandas' object arrays of strings are stored without pickling
    assert Graph.load(tmp_path / "objects").node_names.tolist() == ["x", "y"]
    mixed = Graph.from_edge_index(torch.tensor([[0], [1]]), 2, node_names=np.array(["x", 3], dtype=object))
    with pytest.raises(ValueError, match="node_names must be numbers or strings"):
        mixed.save(tmp_path / "mixed")


@pytest.mark.parametrize("spacing", ["\t", ",", " ", " \t "])
def test_integer_ids_read_alike_however_they_are_written(tmp_path, spacing):
    path = tmp_path / "edges.txt"
    lines = [f"+5{spacing}007", f"7{spacing}-3", f"  12{spacing}5"]
    path.write_text("\n".join(lines) + "\n")
    edges = read_edge_list(path, sep=None if spacing != " \t " else r"\s+")
    assert edges.node_names.tolist() == [-3, 5, 7, 12] and edges.node_names.dtype == np.int64
    assert edges.edge_index.tolist() == [[1, 2, 3], [2, 0, 1]]


@pytest.mark.parametrize(
    "text,message",
    [
        ("a b\nb c d e\n", "malformed|expected 2 or 3"),
        ("a b 1.0\nb c nan\n", "line 2 .*finite"),
        ("a b 1.0\nb c heavy\n", "line 2 .*finite"),
        ("a,b\nc,\n", "line 2 has a missing field"),
        ("# only a comment\n", "no edges"),
    ],
)
def test_edge_list_rejects_malformed_lines(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_edge_list(path)


def test_edge_list_konect_percent_comments(tmp_path):
    path = tmp_path / "out.konect"
    path.write_text("% sym unweighted\n% 3 4 4\n1 2\n2 3\n  % a comment further down\n3 4\n# and a SNAP one\n")
    edges = read_edge_list(path)
    assert edges.node_names.dtype == np.int64 and edges.node_names.tolist() == [1, 2, 3, 4]
    assert edges.edge_index.tolist() == [[0, 1, 2], [1, 2, 3]]


@pytest.mark.parametrize("text,weight", [
    ("src dst\n1 2\n2 3\n", None),
    ("source,target,weight\n1,2,0.5\n2,3,2\n", [0.5, 2.0]),
    ("% KONECT\nFromNodeId\tToNodeId\n1\t2\t0.5\n2\t3\t2\n", [0.5, 2.0]),  # fewer header fields
])
def test_edge_list_header_line_is_skipped(tmp_path, text, weight):
    path = tmp_path / "edges.txt"
    path.write_text(text)
    edges = read_edge_list(path)
    assert edges.node_names.tolist() == [1, 2, 3] and edges.edge_index.tolist() == [[0, 1], [1, 2]]
    assert (edges.weight is None and weight is None) or edges.weight.tolist() == weight


def test_edge_list_words_above_words_are_an_edge(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text("src dst\nbob carol\n")  # string ids: no line is told apart as a header
    assert read_edge_list(path).node_names.tolist() == ["bob", "carol", "dst", "src"]


def test_edge_list_large_integer_ids_stay_exact(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text(f"{2**53} {2**53 + 1}\n1 {2**63 + 1}\n")
    edges = read_edge_list(path)
    assert edges.node_names.dtype == np.uint64
    assert [int(name) for name in edges.node_names] == [1, 2**53, 2**53 + 1, 2**63 + 1]
    assert edges.edge_index.tolist() == [[1, 0], [2, 3]]
    path.write_text(f"{2**53} {2**53 + 1}\n-1 7\n")
    assert read_edge_list(path).node_names.tolist() == [-1, 7, 2**53, 2**53 + 1]


@pytest.mark.parametrize("ids", [f"{2**53} {2**53 + 1}\n1 {2**64}\n", f"-1 {2**63}\n"])
def test_edge_list_ids_beyond_64_bits_are_refused(tmp_path, ids):
    path = tmp_path / "edges.txt"
    path.write_text(ids)
    with pytest.raises(ValueError, match="does not fit in 64 bits"):
        read_edge_list(path)


def test_edge_list_errors_name_file_lines_past_comments_and_header(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text("% KONECT\nsrc dst w\n1 2 1\n\n2 3 nan\n")
    with pytest.raises(ValueError, match="line 5 has a weight that is not a finite number"):
        read_edge_list(path)
    path.write_text("% KONECT\nsrc dst\n1 2\n% more\n2 3 4 5\n")
    with pytest.raises(ValueError, match="line 5"):
        read_edge_list(path)


def test_edge_list_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_edge_list(tmp_path / "absent.txt")


def test_mat_reader_and_its_errors(tmp_path):
    network = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float64))
    group = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1]]))
    scipy.io.savemat(tmp_path / "ok.mat", {"network": network, "group": group})
    data = load_dataset(str(tmp_path / "ok.mat"))
    assert data.graph.num_edges == 4 and data.labels.tolist() == [[1, 0], [0, 1], [1, 1]]
    scipy.io.savemat(tmp_path / "nonet.mat", {"graph": network})
    with pytest.raises(ValueError, match="no 'network'"):
        load_dataset(str(tmp_path / "nonet.mat"))
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(ValueError, match="not a readable MATLAB"):
        load_dataset(str(tmp_path / "junk.mat"))


def test_jodie_reader_rejects_bad_rows(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("u,i,ts,label\n0,2,1,0\n1,x,2,0\n")
    with pytest.raises(ValueError, match="non-numeric|non-finite"):
        load_dataset(str(path))


def test_synthetic_is_deterministic_by_seed():
    a = generate_synthetic(2000, 20000, 16, 5, seed=3)
    b = generate_synthetic(2000, 20000, 16, 5, seed=3)
    c = generate_synthetic(2000, 20000, 16, 5, seed=4)
    assert torch.equal(a.graph.indices, b.graph.indices) and torch.equal(a.features, b.features)
    assert not torch.equal(a.graph.indices, c.graph.indices)
    small = generate_synthetic(2000, 20000, 16, 5, seed=3, index_dtype=torch.int32)
    assert small.graph.indices.dtype == torch.int32
    assert torch.equal(small.graph.indices.long(), a.graph.indices)


def test_synthetic_has_power_law_degrees_homophily_and_informative_features():
    data = generate_synthetic(20000, 200000, 32, 8, homophily=0.8, feature_signal=0.3, seed=0)
    graph = data.graph
    assert graph.is_symmetric() and graph.num_self_loops() == 0
    assert 0.8 * 2 * 200000 < graph.num_edges <= 2 * 200000
    degree = graph.degree().double()
    assert float(degree.max()) > 20 * float(degree.median())  # heavy tail
    same = (data.labels[graph.row()] == data.labels[graph.indices]).double().mean()
    assert 0.75 < float(same) < 0.9
    # Nearest class centroid on the raw features clearly beats predicting the largest class.
    centroids = torch.stack([data.features[data.labels == c].mean(0) for c in range(8)])
    predicted = torch.cdist(data.features, centroids).argmin(1)
    majority = torch.bincount(data.labels).max() / data.labels.numel()
    assert float((predicted == data.labels).double().mean()) > float(majority) + 0.2


def test_synthetic_presets_have_ogb_shapes():
    products = generate_preset("products", scale=0.002)
    assert products.graph.num_nodes == round(2_449_029 * 0.002)
    assert products.num_features == 100 and products.num_classes == 47
    assert abs(len(products.splits["train"]) / products.graph.num_nodes - 0.0803) < 0.01
    arxiv = load_dataset("synthetic-arxiv", scale=0.01)
    assert not arxiv.graph.is_symmetric() and arxiv.num_classes == 40
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        load_dataset("synthetic-mag")


def _info(capsys, *argv):
    assert cli_main(["info", *argv]) == 0
    return capsys.readouterr().out


def test_info_cora(capsys, data_root):
    out = _info(capsys, "cora", "--root", str(data_root))
    assert "nodes       2708" in out
    assert "edges       10556 directed (5278 undirected)" in out
    assert "features    1433" in out and "classes     7" in out
    assert "train 140 / valid 500 / test 1000" in out


def test_info_blogcatalog(capsys, data_root):
    out = _info(capsys, "blogcatalog", "--root", str(data_root))
    assert "10312" in out and "(333983 undirected)" in out
    assert "labels (multi-label)  39" in out


def test_info_unknown_dataset_is_a_clear_error(capsys):
    assert cli_main(["info", "no-such-dataset"]) == 2
    assert "unknown dataset" in capsys.readouterr().err


def test_ogb_is_imported_without_its_network_release_check():
    # ogb starts a thread at import that asks PyPI for its latest release through `outdated`; a fresh
    # interpreter with a stand-in `outdated` shows whether that check ran.
    script = textwrap.dedent("""
        import sys, threading, types
        calls = []
        stand_in = types.ModuleType("outdated")
        stand_in.check_outdated = lambda *args: calls.append(args) or (False, "0")
        sys.modules["outdated"] = stand_in
        from gnnscale.datasets.ogb_package import import_ogb
        evaluator = import_ogb("nodeproppred").Evaluator
        for thread in threading.enumerate():
            if thread is not threading.main_thread():
                thread.join()
        assert calls == [], calls
        assert sys.modules["outdated"] is stand_in  # put back as it was
        print("quiet")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "quiet" in done.stdout, done.stderr
