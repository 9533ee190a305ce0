"""The formats users bring: temporal edge lists, headers, .emb files, 1-D features, PyG datasets."""
import configparser
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data, TemporalData

from gnnscale.datasets.edge_list import edge_list_graph, read_edge_list
from gnnscale.datasets.jodie import load_jodie, read_temporal_edge_list
from gnnscale.embedding import Embeddings, load_embeddings, save_embeddings
from gnnscale.graph import Graph, from_pyg, to_pyg
from gnnscale.programs.main import main
from gnnscale.storage.feature_store import FeatureStore
from gnnscale.temporal_graph import TemporalGraph

PROJECT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- temporal edge lists
def test_a_unipartite_stream_keeps_one_id_space(tmp_path):
    path = tmp_path / "sx.txt"
    path.write_text("# SNAP temporal network\n5 3 10\n3 5 20\n5 0 30\n")
    events = read_temporal_edge_list(path)
    assert events.num_nodes == 6
    assert events.src.tolist() == [5, 3, 5] and events.dst.tolist() == [3, 5, 0]
    assert events.t.tolist() == [10, 20, 30] and events.edge_features is None and events.labels is None


def test_a_jodie_header_on_a_unipartite_stream_can_be_forced_unipartite(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("u,i,ts,label\n0,1,1,0\n1,0,2,0\n")
    assert load_jodie(path, bipartite=False).dst.tolist() == [1, 0]
    assert read_temporal_edge_list(path, bipartite=False).num_nodes == 2


def test_a_bipartite_jodie_file_loads_as_jodie_defines(tmp_path):
    path = tmp_path / "wiki.csv"
    path.write_text("user_id,item_id,timestamp,state_label,comma_separated_list_of_features\n"
                    "0,0,5,0,0.5,1\n1,0,3,1,0.25,2\n1,1,7,0,1,3\n")
    events = read_temporal_edge_list(path)
    assert events.src.tolist() == [1, 0, 1] and events.dst.tolist() == [2, 2, 3]  # items after the 2 users
    assert events.num_nodes == 4 and events.t.tolist() == [3, 5, 7] and events.labels.tolist() == [1, 0, 0]
    assert events.edge_features.tolist() == [[0.25, 2.0], [0.5, 1.0], [1.0, 3.0]]
    unshifted = tmp_path / "unshifted.csv"
    unshifted.write_text("u,i,ts,label\n0,2,1,0\n1,3,2,0\n")
    assert read_temporal_edge_list(unshifted).dst.tolist() == [2, 3]  # items that already follow the users


def test_a_plain_stream_can_be_forced_bipartite(tmp_path):
    path = tmp_path / "events.txt"
    path.write_text("0 0 1\n1 0 2\n")
    assert read_temporal_edge_list(path, bipartite=True).dst.tolist() == [2, 2]


def test_a_header_line_commas_and_extra_columns(tmp_path):
    path = tmp_path / "bitcoin.csv"
    path.write_text("source,target,time,rating\n% a comment\n7,2,100,-1\n2,7,50,4.5\n")
    events = read_temporal_edge_list(path)
    assert events.src.tolist() == [2, 7] and events.dst.tolist() == [7, 2] and events.num_nodes == 8
    assert events.t.tolist() == [50, 100] and events.edge_features.tolist() == [[4.5], [-1.0]]


def test_an_unsorted_stream_is_sorted_stably(tmp_path):
    path = tmp_path / "events.txt"
    path.write_text("0 1 3\n1 2 1\n2 3 3\n3 4 1\n4 5 2.5\n")
    events = read_temporal_edge_list(path)
    assert events.src.tolist() == [1, 3, 4, 0, 2] and events.t.tolist() == [1, 1, 2.5, 3, 3]
    graph = TemporalGraph.from_dataset(events)
    assert graph.num_events == 5 and graph.num_nodes == 6


@pytest.mark.parametrize("text, message", [
    ("# c\n0 1 1\n0 x 2\n", "line 3 has a non-numeric or negative node id 'x'"),
    ("src dst ts\n0 1 1\n\n0 1 soon\n", "line 4 has a timestamp that is not a finite number"),
    ("0 1 1\n0 -1 2\n", "line 2 has a non-numeric or negative node id"),
    ("0 1\n1 2\n", "expected at least 3 columns"),
])
def test_bad_event_lines_name_their_line(tmp_path, text, message):
    path = tmp_path / "events.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_temporal_edge_list(path)


# ---------------------------------------------------------------- static edge lists
def test_a_header_above_string_ids_and_weights_is_skipped(tmp_path):
    path = tmp_path / "edges.csv"
    path.write_text("src,dst,weight\na,b,0.5\nb,c,2\n")
    edges = read_edge_list(path)
    assert edges.node_names.tolist() == ["a", "b", "c"] and edges.weight.tolist() == [0.5, 2.0]


def test_a_non_integer_id_below_a_header_is_an_error_naming_its_line(tmp_path):
    path = tmp_path / "edges.csv"
    path.write_text("src,dst,weight\n1,2,0.5\n2,3,heavy\n")
    with pytest.raises(ValueError, match="line 3 has a weight"):
        read_edge_list(path)


def test_info_and_embed_read_an_edge_list_as_one_graph(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text("1 2\n2 3\n3 1\n3 3\n2 1\n1 2\n3 4\n")  # a self-loop, a repeat, a reverse
    graph = edge_list_graph(path)
    assert graph.num_edges == 8 and graph.num_self_loops() == 0 and graph.is_symmetric()
    embed_side = Graph.from_edge_list(path, directed=False)
    assert torch.equal(embed_side.indptr, graph.indptr) and torch.equal(embed_side.indices, graph.indices)
    assert Graph.from_edge_list(path, directed=True).num_edges == 5


def _printed_number(pattern: str, text: str) -> int:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, (pattern, text)
    return int(match.group(1))


@pytest.mark.parametrize("name, separator", [("edges.txt", " "), ("edges.csv", ",")])
def test_the_info_and_embed_commands_count_one_graph(tmp_path, capsys, name, separator):
    path = tmp_path / name
    edges = [(1, 2), (2, 3), (3, 1), (3, 3), (2, 1), (1, 2), (3, 4)]  # a self-loop, a repeat, a reverse
    path.write_text(f"src{separator}dst\n" + "".join(f"{a}{separator}{b}\n" for a, b in edges))
    assert main(["info", str(path)]) == 0
    info = capsys.readouterr().out
    output = tmp_path / "emb.npz"
    assert main(["embed", "--input", str(path), "--output", str(output), "--method", "fastrp", "--dim", "4",
                 "--fastrp-weights", "1,1"]) == 0
    embed = capsys.readouterr().out
    nodes, directed = _printed_number(r"^nodes\s+(\d+)$", info), _printed_number(r"^edges\s+(\d+) directed", info)
    assert (nodes, directed) == (4, 8)  # 1-2, 2-3, 3-1, 3-4 each way
    assert _printed_number(r": (\d+) nodes", embed) == nodes
    assert _printed_number(r", (\d+) directed edges", embed) == directed
    assert sorted(load_embeddings(output).ids.tolist()) == ["1", "2", "3", "4"]


# ---------------------------------------------------------------- embeddings
def test_emb_files_are_word2vec_text(tmp_path):
    path = tmp_path / "node2vec.emb"
    path.write_text("2 3\n7 0.5 1 2\n3 -1 0 1e-2\n")
    loaded = load_embeddings(path)
    assert list(loaded.ids) == ["7", "3"]
    torch.testing.assert_close(loaded.vertex, torch.tensor([[0.5, 1.0, 2.0], [-1.0, 0.0, 1e-2]]))
    out = save_embeddings(loaded, tmp_path / "copy.emb")
    assert out.read_text().splitlines()[0] == "2 3" and list(load_embeddings(out).ids) == ["7", "3"]


@pytest.mark.parametrize("suffix", [".txt", ".npz"])
def test_context_embeddings_are_written_only_when_asked(tmp_path, suffix):
    embeddings = Embeddings(vertex=torch.randn(3, 2), context=torch.randn(3, 2))
    assert load_embeddings(save_embeddings(embeddings, tmp_path / f"plain{suffix}")).context is None
    assert not (tmp_path / f"plain.context{suffix}").exists()
    asked = load_embeddings(save_embeddings(embeddings, tmp_path / f"both{suffix}", with_context=True))
    torch.testing.assert_close(asked.context, embeddings.context)


# ---------------------------------------------------------------- FeatureStore
@pytest.mark.filterwarnings("ignore:rows of .* bytes are shorter")
def test_a_one_dimensional_tensor_comes_out_one_dimensional():
    store = FeatureStore()
    x, y = torch.randn(6, 4), torch.tensor([0, 2, 1, 1, 0, 2])
    store.put_tensor(x, group_name=None, attr_name="x", index=None)
    store.put_tensor(y, group_name=None, attr_name="y", index=None)
    index = torch.tensor([4, 0, 2])
    assert torch.equal(store.get_tensor(group_name=None, attr_name="y", index=None), y)
    assert torch.equal(store[None, "y", None], y)
    assert torch.equal(store.get_tensor(group_name=None, attr_name="y", index=index), y[index])
    assert torch.equal(store.get_tensor(group_name=None, attr_name="x", index=index), x[index])
    assert store.get_tensor_size(group_name=None, attr_name="y") == (6,)
    logits = torch.zeros(3, 3)
    F.cross_entropy(logits, store.get_tensor(group_name=None, attr_name="y", index=index))  # PyG's loop


# ---------------------------------------------------------------- PyG interop
def _pyg_node_data():
    gen = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 3, (10,), generator=gen)
    return Data(x=torch.randn(10, 5, generator=gen), edge_index=torch.randint(0, 10, (2, 40), generator=gen),
                y=torch.randint(0, 4, (10,), generator=gen), train_mask=masks == 0, val_mask=masks == 1,
                test_mask=masks == 2)


def _edge_set(edge_index):
    return sorted(map(tuple, edge_index.t().tolist()))


def test_from_pyg_data_is_a_node_dataset_with_splits():
    data = _pyg_node_data()
    dataset = from_pyg(data, name="toy")
    assert dataset.name == "toy" and dataset.graph.num_nodes == 10 and dataset.num_classes == int(data.y.max()) + 1
    assert _edge_set(dataset.graph.edge_index()) == _edge_set(data.edge_index)
    assert torch.equal(dataset.features, data.x) and torch.equal(dataset.labels, data.y)
    assert dataset.splits["train"].tolist() == data.train_mask.nonzero().reshape(-1).tolist()
    assert dataset.splits["valid"].tolist() == data.val_mask.nonzero().reshape(-1).tolist()
    back = to_pyg(dataset)
    assert _edge_set(back.edge_index) == _edge_set(data.edge_index) and torch.equal(back.x, data.x)
    for mask in ("train_mask", "val_mask", "test_mask"):
        assert torch.equal(back[mask], data[mask])
    assert torch.equal(back.y, data.y)


def test_from_pyg_temporal_data_is_a_temporal_graph():
    data = TemporalData(src=torch.tensor([0, 2, 1]), dst=torch.tensor([3, 0, 3]), t=torch.tensor([1, 5, 5]),
                        msg=torch.arange(6, dtype=torch.float32).reshape(3, 2))
    graph = from_pyg(data)
    assert isinstance(graph, TemporalGraph) and graph.num_nodes == 4 and graph.num_events == 3
    back = to_pyg(graph)
    assert torch.equal(back.src, data.src) and torch.equal(back.dst, data.dst)
    assert back.t.tolist() == data.t.tolist() and torch.equal(back.msg, data.msg)


def test_from_pyg_refuses_multi_split_masks():
    data = _pyg_node_data()
    data.train_mask = torch.ones(10, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="train_mask must be a 1-D bool mask"):
        from_pyg(data)


# ---------------------------------------------------------------- packaging
def test_pandas_and_scikit_learn_are_declared():
    config = configparser.ConfigParser()
    config.read(PROJECT / "setup.cfg")
    requires = [line.strip() for line in config["options"]["install_requires"].splitlines() if line.strip()]
    names = {line.split(">")[0].split("=")[0].strip().lower() for line in requires}
    assert {"pandas", "scikit-learn"} <= names
    assert all(">=" in line for line in requires if line.lower().startswith(("pandas", "scikit-learn")))
