"""Dataset files that would run code when unpickled are refused, and their code never runs."""
import gzip
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import torch

from gnnscale import load_dataset
from gnnscale.cli import main as cli_main


class Payload:
    """Unpickling this creates ``marker``: the stand-in for whatever a crafted file would run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ Planetoid


def _cora_with(tmp_path: Path, data_root: Path, suffix: str, contents) -> Path:
    """A data root whose Cora files are the real ones but for ind.cora.<suffix>, pickled from ``contents``."""
    raw = tmp_path / "root" / "planetoid" / "Cora" / "raw"
    raw.mkdir(parents=True)
    for source in (data_root / "planetoid" / "Cora" / "raw").iterdir():
        if source.name != f"ind.cora.{suffix}":
            (raw / source.name).symlink_to(source)
    (raw / f"ind.cora.{suffix}").write_bytes(pickle.dumps(contents, protocol=2))
    return tmp_path / "root"


@pytest.mark.parametrize("suffix,hidden", [("graph", False), ("graph", True), ("allx", False), ("ty", False)])
def test_planetoid_pickle_that_runs_code_is_refused(data_root, tmp_path, suffix, hidden):
    marker = tmp_path / "payload-ran"
    # hidden: the payload sits inside the dict of neighbour lists a graph file really holds.
    contents = {0: [1, Payload(marker)]} if hidden else Payload(marker)
    root = _cora_with(tmp_path, data_root, suffix, contents)
    with pytest.raises(ValueError, match=rf"ind\.cora\.{suffix} is not a Planetoid file.*exec.*refusing"):
        load_dataset("cora", root=root)
    assert not marker.exists()


def test_planetoid_pickle_of_another_type_is_refused(data_root, tmp_path):
    root = _cora_with(tmp_path, data_root, "ally", {"labels": [1, 2]})  # allowed types, not a matrix
    with pytest.raises(ValueError, match=r"ind\.cora\.ally holds a dict, expected a 2-D numeric matrix"):
        load_dataset("cora", root=root)


def test_cli_info_refuses_a_crafted_planetoid_file(data_root, tmp_path, capsys):
    # In-process, as `python -m gnnscale info` runs main(): an uncaught error would be a traceback.
    marker = tmp_path / "payload-ran"
    root = _cora_with(tmp_path, data_root, "graph", Payload(marker))
    assert cli_main(["info", "cora", "--root", str(root)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("gnnscale info: error: ") and captured.out == ""
    assert "ind.cora.graph is not a Planetoid file" in captured.err and "refusing" in captured.err
    assert not marker.exists()


# ------------------------------------------------------------------ OGB


def _gzip_text(path: Path, text: str) -> None:
    with gzip.open(path, "wt") as handle:
        handle.write(text)


def _small_ogbl_ddi(root: Path) -> Path:
    """ogbl-ddi's layout with 4 nodes and 3 edges: what ogb reads, small enough to process in no time."""
    folder = root / "ogbl_ddi"
    (folder / "raw").mkdir(parents=True)
    (folder / "split" / "target").mkdir(parents=True)
    (folder / "RELEASE_v1.txt").write_text("ogbl-ddi\n")
    edges = [[0, 1], [1, 2], [2, 3]]
    _gzip_text(folder / "raw" / "edge.csv.gz", "".join(f"{a},{b}\n" for a, b in edges))
    _gzip_text(folder / "raw" / "num-node-list.csv.gz", "4\n")
    _gzip_text(folder / "raw" / "num-edge-list.csv.gz", "3\n")
    torch.save({"edge": torch.tensor(edges)}, folder / "split" / "target" / "train.pt")
    for part in ("valid", "test"):
        torch.save({"edge": torch.tensor([[0, 2]]), "edge_neg": torch.tensor([[0, 3]])},
                   folder / "split" / "target" / f"{part}.pt")
    return folder


def _plant_with_its_sum(path: Path, marker: Path) -> None:
    """A pickle that runs code, with a sums file beside it that vouches for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(Payload(marker), path)
    (path.parent / "gnnscale-sha256.json").write_text(json.dumps({path.name: _sha256(path)}))


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GNNSCALE_CACHE", str(cache))
    return cache


def test_ogb_processed_file_shipped_in_the_data_folder_is_never_read(tmp_path, own_cache):
    marker = tmp_path / "payload-ran"
    folder = _small_ogbl_ddi(tmp_path / "root")
    _plant_with_its_sum(folder / "processed" / "data_processed", marker)
    ddi = load_dataset("ogbl-ddi", root=tmp_path / "root")
    assert not marker.exists()
    # ogb processed the raw files into the cache instead.
    assert ddi.graph.num_nodes == 4 and ddi.graph.num_edges == 6
    assert sorted(path.name for path in (folder / "processed").iterdir()) == ["data_processed", "gnnscale-sha256.json"]
    again = load_dataset("ogbl-ddi", root=tmp_path / "root")  # from the processed file in the cache
    assert torch.equal(again.graph.indices, ddi.graph.indices) and not marker.exists()


def test_ogb_split_file_vouched_for_by_a_sums_file_beside_it_is_refused(tmp_path, own_cache):
    marker = tmp_path / "payload-ran"
    folder = _small_ogbl_ddi(tmp_path / "root")
    _plant_with_its_sum(folder / "split" / "target" / "valid.pt", marker)
    with pytest.raises(ValueError, match=r"valid\.pt holds objects torch's safe loader refuses.*refusing"):
        load_dataset("ogbl-ddi", root=tmp_path / "root")
    assert not marker.exists()


def test_ogb_processed_file_changed_in_the_cache_is_refused(tmp_path, own_cache):
    marker = tmp_path / "payload-ran"
    _small_ogbl_ddi(tmp_path / "root")
    load_dataset("ogbl-ddi", root=tmp_path / "root")  # ogb writes, gnnscale records
    [processed] = own_cache.glob("ogb/*/ogbl_ddi/processed/data_processed")
    torch.save(Payload(marker), processed)
    with pytest.raises(ValueError, match="checksum is not one gnnscale recorded"):
        load_dataset("ogbl-ddi", root=tmp_path / "root")
    assert not marker.exists()


def test_ogb_processed_file_gnnscale_never_saw_written_is_replaced(tmp_path, own_cache):
    marker = tmp_path / "payload-ran"
    _small_ogbl_ddi(tmp_path / "root")
    load_dataset("ogbl-ddi", root=tmp_path / "root")
    [record] = own_cache.glob("ogb/*/written-by-ogb-sha256.json")
    record.unlink()  # as after a save cut short, before gnnscale noted the file
    torch.save(Payload(marker), record.parent / "ogbl_ddi" / "processed" / "data_processed")
    ddi = load_dataset("ogbl-ddi", root=tmp_path / "root")  # ogb processes the raw files again
    assert ddi.graph.num_nodes == 4 and not marker.exists()
    assert set(json.loads(record.read_text())) == {"data_processed"}


def test_ogb_without_raw_files_is_a_clear_error(tmp_path, own_cache):
    folder = _small_ogbl_ddi(tmp_path / "root")
    for path in (folder / "raw").iterdir():
        path.unlink()
    (folder / "raw").rmdir()
    with pytest.raises(FileNotFoundError, match="no raw/ folder"):
        load_dataset("ogbl-ddi", root=tmp_path / "root")


# ------------------------------------------------------------------ MATLAB


def test_mat_file_is_never_unpickled_and_cell_arrays_are_refused(tmp_path):
    # loadmat has no pickle path: a cell array comes back as a numpy object array of plain values.
    marker = tmp_path / "payload-ran"
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0] = np.frombuffer(pickle.dumps(Payload(marker)), dtype=np.uint8)
    cell[0, 1] = "text"
    scipy.io.savemat(tmp_path / "cell.mat", {"network": cell})
    with pytest.raises(ValueError, match="'network' must be a numeric or sparse matrix, got object values"):
        load_dataset(str(tmp_path / "cell.mat"))
    scipy.io.savemat(tmp_path / "group.mat", {"network": sp.csr_matrix(np.eye(2)), "group": cell})
    with pytest.raises(ValueError, match="'group' must be a numeric or sparse matrix"):
        load_dataset(str(tmp_path / "group.mat"))
    assert not marker.exists()
