"""Saved dataset folders (save_dataset / load_dataset(folder)): what goes in comes out, mapped, and a
folder that does not hold what its header says is refused with a message naming the problem."""
import hashlib
import json

import numpy as np
import pytest
import torch

from gnnscale import Graph
from gnnscale.datasets import LinkDataset, NodeDataset, load_dataset, save_dataset
from gnnscale.datasets.saved import verify_dataset

NUM_NODES = 200


def _graph():
    gen = torch.Generator().manual_seed(3)
    return Graph.from_edge_index(torch.randint(0, NUM_NODES, (2, 1500), generator=gen), NUM_NODES, symmetrize=True)


def _node_dataset():
    gen = torch.Generator().manual_seed(4)
    order = torch.randperm(NUM_NODES, generator=gen)
    return NodeDataset("toy", _graph(), torch.randn(NUM_NODES, 8, generator=gen),
                       torch.randint(0, 3, (NUM_NODES,), generator=gen),
                       {"train": order[:100], "valid": order[100:150], "test": order[150:]}, num_classes=3)


def test_a_node_dataset_comes_back_whole_with_features_and_transpose_mapped(tmp_path):
    dataset = _node_dataset()
    save_dataset(dataset, tmp_path / "toy")
    loaded = load_dataset(str(tmp_path / "toy"))
    assert isinstance(loaded, NodeDataset)
    assert (loaded.name, loaded.num_classes, loaded.multilabel) == ("toy", 3, False)
    assert torch.equal(loaded.features, dataset.features) and torch.equal(loaded.labels, dataset.labels)
    assert sorted(loaded.splits) == ["test", "train", "valid"]
    for name, index in dataset.splits.items():
        assert torch.equal(loaded.splits[name], index), name
    assert torch.equal(loaded.graph.indices, dataset.graph.indices)
    # features and the in-edges every sampler reads are mapped from the folder, not copied
    mapped = np.load(tmp_path / "toy" / "features.npy", mmap_mode="r")
    assert loaded.features.untyped_storage().nbytes() == mapped.nbytes
    incoming = loaded.graph._csc
    assert incoming is not None and torch.equal(incoming.indices, dataset.graph.csc().indices)
    assert torch.equal(incoming.edge_ids, dataset.graph.csc().edge_ids)


def test_a_link_dataset_comes_back_with_every_split_part(tmp_path):
    gen = torch.Generator().manual_seed(5)
    split = {"train": {"edge": torch.randint(0, NUM_NODES, (50, 2), generator=gen)},
             "valid": {"edge": torch.randint(0, NUM_NODES, (10, 2), generator=gen),
                       "edge_neg": torch.randint(0, NUM_NODES, (10, 4, 2), generator=gen)}}
    dataset = LinkDataset("links", _graph(), None, split, metric="hits@20")
    save_dataset(dataset, tmp_path / "links")
    loaded = load_dataset(str(tmp_path / "links"))
    assert isinstance(loaded, LinkDataset) and loaded.metric == "hits@20" and loaded.features is None
    assert {s: sorted(p) for s, p in loaded.edge_split.items()} == {"train": ["edge"], "valid": ["edge", "edge_neg"]}
    for name, parts in split.items():
        for part, values in parts.items():
            assert torch.equal(loaded.edge_split[name][part], values), (name, part)


@pytest.fixture
def saved(tmp_path):
    save_dataset(_node_dataset(), tmp_path / "toy")
    return tmp_path / "toy"


def _edit_header(folder, change):
    header = json.loads((folder / "dataset.json").read_text())
    change(header)
    (folder / "dataset.json").write_text(json.dumps(header))


def test_an_array_name_that_leaves_the_folder_is_refused(saved):
    _edit_header(saved, lambda h: h["arrays"].update({"../../etc/passwd": {"dtype": "int64", "shape": [1]}}))
    with pytest.raises(ValueError, match="not plain words"):
        load_dataset(str(saved))


def test_an_array_that_differs_from_its_header_is_refused(saved):
    np.save(saved / "labels.npy", np.zeros(NUM_NODES, dtype=np.int32))
    with pytest.raises(ValueError, match="labels.npy holds int32.*says int64"):
        load_dataset(str(saved))


def test_a_truncated_feature_file_is_refused_before_it_is_mapped(saved):
    path = saved / "features.npy"
    path.write_bytes(path.read_bytes()[:-16])
    with pytest.raises(ValueError, match="truncated"):
        load_dataset(str(saved))


def test_split_ids_outside_the_graph_are_refused(saved):
    np.save(saved / "split-train.npy", np.array([0, NUM_NODES] + [1] * 98, dtype=np.int64))
    with pytest.raises(ValueError, match=f"node id {NUM_NODES}, outside the graph's {NUM_NODES} nodes"):
        load_dataset(str(saved))


def test_a_header_of_another_kind_or_version_is_refused(saved):
    _edit_header(saved, lambda h: h.update(version=99))
    with pytest.raises(ValueError, match="format version 99"):
        load_dataset(str(saved))
    _edit_header(saved, lambda h: h.update(version=1, kind="pickle"))
    with pytest.raises(ValueError, match="'kind' must be 'node' or 'link'"):
        load_dataset(str(saved))


def test_a_listed_array_that_is_missing_is_named(saved):
    (saved / "split-valid.npy").unlink()
    with pytest.raises(FileNotFoundError, match="split-valid.npy is listed"):
        load_dataset(str(saved))


def test_a_folder_of_format_version_1_without_checksums_still_opens(saved):
    _edit_header(saved, lambda h: (h.update(version=1), h.pop("files")))
    loaded = load_dataset(str(saved))
    assert torch.equal(loaded.graph.indices, _graph().indices) and loaded.features.shape == (NUM_NODES, 8)
    with pytest.raises(ValueError, match="no manifest of checksums"):
        verify_dataset(saved)


def test_the_manifest_lists_every_file_with_its_size_and_checksum(saved):
    header = json.loads((saved / "dataset.json").read_text())
    on_disk = sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file() and p.name != "dataset.json")
    assert sorted(header["files"]) == on_disk
    for name, entry in header["files"].items():
        data = (saved / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name
    assert verify_dataset(saved) == len(on_disk)
    _edit_header(saved, lambda h: h["files"].update({"../outside": {"bytes": 1, "sha256": "0" * 64}}))
    with pytest.raises(ValueError, match="lists a file outside its folder"):
        load_dataset(str(saved))
