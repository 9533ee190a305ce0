"""Dataset files that would run code when unpickled, or make a reader write out of bounds, are
refused, and their code never runs."""
import collections
import gzip
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import torch

from conftest import PROJECT
from gnnscale import load_dataset
from gnnscale.programs.main import main as cli_main


class Payload:
    """Unpickling this creates ``marker``: the stand-in for whatever a crafted file would run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Pickled:
    """Pickles as ``func(*args)`` given ``state``: the way numpy spells its own objects, with any state."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


_reconstruct = (getattr(np, "_core", None) or np.core).multiarray._reconstruct


def _array_pickle(dtype_spec: str, dtype_state: tuple, shape: tuple, raw: bytes) -> _Pickled:
    """A numpy array as numpy pickles one, but for a dtype state and raw bytes of our choosing."""
    dtype = _Pickled(np.dtype, (dtype_spec, False, True), dtype_state)
    return _Pickled(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, raw))


_LOAD_EACH = """
import sys
from gnnscale import load_dataset
for name in sys.argv[2:]:
    try:
        load_dataset(name, root=sys.argv[1] or None)
        print("loaded", name)
    except ValueError as error:
        print("ValueError:", error)
"""


def _load_in_a_fresh_interpreter(root, *names) -> str:
    """Loads the datasets in a fresh Python process, so that a reader writing out of bounds kills
    that process, not the test run; returns what it printed, a line per dataset."""
    done = subprocess.run([sys.executable, "-c", _LOAD_EACH, str(root or ""), *map(str, names)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"the reader died (exit code {done.returncode}): {done.stderr[-3000:]}"
    return done.stdout


# ------------------------------------------------------------------ Planetoid


def _cora_with(tmp_path: Path, data_root: Path, suffix: str, contents, protocol: int = 2) -> Path:
    """A data root whose Cora files are the real ones but for ind.cora.<suffix>, pickled from ``contents``."""
    raw = tmp_path / "root" / "planetoid" / "Cora" / "raw"
    raw.mkdir(parents=True)
    for source in (data_root / "planetoid" / "Cora" / "raw").iterdir():
        if source.name != f"ind.cora.{suffix}":
            (raw / source.name).symlink_to(source)
    (raw / f"ind.cora.{suffix}").write_bytes(pickle.dumps(contents, protocol=protocol))
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


def test_planetoid_csr_matrix_whose_state_replaces_its_checks_is_refused(data_root, tmp_path):
    # A pickled CSR matrix's state goes into its __dict__: here it shadows check_format, so that
    # a column index far outside the matrix would reach scipy's toarray unchecked.
    matrix = sp.csr_matrix(np.eye(2))
    matrix.indices = np.array([0, 10**8], dtype=np.int32)
    matrix.check_format = collections.defaultdict
    root = _cora_with(tmp_path, data_root, "tx", matrix, protocol=4)
    printed = _load_in_a_fresh_interpreter(root, "cora")
    assert "ValueError:" in printed and "ind.cora.tx is not a Planetoid file" in printed
    assert "CSR matrix state with keys" in printed and "check_format" in printed


def test_planetoid_array_of_forged_object_pointers_is_refused(data_root, tmp_path):
    # An object dtype whose state clears its flags makes numpy take the array's raw bytes for
    # object pointers; iterating the array (as building the graph does) dereferences them.
    pointers = (0x4141414141414141).to_bytes(8, "little") * 2
    forged = _array_pickle("O8", (3, "|", None, None, None, -1, -1, 0), (2,), pointers)
    graph = {node: [] for node in range(2708)}
    graph[0], graph[1] = [1], forged
    root = _cora_with(tmp_path, data_root, "graph", graph, protocol=4)
    printed = _load_in_a_fresh_interpreter(root, "cora")
    assert "ValueError:" in printed and "ind.cora.graph is not a Planetoid file" in printed
    assert "numpy object dtype" in printed


@pytest.mark.parametrize("state", [
    (3, "<", None, None, None, 16, 1, 0),  # an item size other than the type's
    (3, "<", None, ("a",), {"a": (_Pickled(np.dtype, ("O8", False, True)), 0)}, 8, 1, 0),  # an object field
], ids=["item size", "object field"])
def test_planetoid_array_with_a_crafted_dtype_state_is_refused(data_root, tmp_path, state):
    labels = _array_pickle("f8", state, (1708, 7), bytes(1708 * 7 * 8))
    root = _cora_with(tmp_path, data_root, "ally", labels, protocol=4)
    with pytest.raises(ValueError, match=r"ind\.cora\.ally is not a Planetoid file: its pickle asks for a numpy"):
        load_dataset("cora", root=root)


def test_planetoid_graph_defaults_only_to_lists(data_root, tmp_path):
    neighbours = collections.defaultdict(np.dtype, {node: [] for node in range(2708)})
    root = _cora_with(tmp_path, data_root, "graph", neighbours, protocol=4)
    with pytest.raises(ValueError, match=r"ind\.cora\.graph is not a Planetoid file: .*defaultdict"):
        load_dataset("cora", root=root)


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


def _small_ogbn_proteins(root: Path) -> Path:
    """ogbn-proteins' layout as it is downloaded (its species file named species.csv.gz), 4 nodes."""
    folder = root / "ogbn_proteins"
    (folder / "raw").mkdir(parents=True)
    (folder / "split" / "species").mkdir(parents=True)
    (folder / "RELEASE_v1.txt").write_text("ogbn-proteins\n")
    _gzip_text(folder / "raw" / "edge.csv.gz", "0,1\n1,2\n2,3\n")
    _gzip_text(folder / "raw" / "edge-feat.csv.gz", "".join("0.5," * 7 + "0.5\n" for _ in range(3)))
    _gzip_text(folder / "raw" / "num-node-list.csv.gz", "4\n")
    _gzip_text(folder / "raw" / "num-edge-list.csv.gz", "3\n")
    _gzip_text(folder / "raw" / "species.csv.gz", "3702\n3702\n4932\n4932\n")
    _gzip_text(folder / "raw" / "node-label.csv.gz", "".join(",".join(["1"] * 112) + "\n" for _ in range(4)))
    for part, node in (("train", 0), ("valid", 1), ("test", 2)):
        _gzip_text(folder / "split" / "species" / f"{part}.csv.gz", f"{node}\n")
    return folder


def test_ogb_renames_raw_files_in_the_mirror_never_in_the_data_folder(tmp_path, own_cache):
    folder = _small_ogbn_proteins(tmp_path / "root")
    before = sorted(path.name for path in (folder / "raw").iterdir())
    proteins = load_dataset("ogbn-proteins", root=tmp_path / "root")
    assert proteins.graph.num_nodes == 4 and proteins.labels.shape == (4, 112)
    assert sorted(path.name for path in (folder / "raw").iterdir()) == before  # species.csv.gz kept its name
    again = load_dataset("ogbn-proteins", root=tmp_path / "root")  # the mirror is made again, the data kept
    assert torch.equal(again.graph.indices, proteins.graph.indices)
    assert sorted(path.name for path in (folder / "raw").iterdir()) == before


def _torch_file_naming_numpy_1(path: Path, contents) -> None:
    """torch.save's old format, as ogb's split files are, with numpy's _reconstruct under the name
    numpy 1 gave it, as in those files."""
    buffer = io.BytesIO()
    torch.save(contents, buffer, _use_new_zipfile_serialization=False)
    old_name = b"cnumpy.core.multiarray\n_reconstruct\n"
    path.write_bytes(buffer.getvalue().replace(b"cnumpy._core.multiarray\n_reconstruct\n", old_name))
    assert old_name in path.read_bytes()


@pytest.mark.parametrize("state", [
    (3, "<", None, None, None, 16, 1, 0),  # an item size other than the type's
    (3, "<", None, ("a",), {"a": (_Pickled(np.dtype, ("O8", False, True)), 0)}, 8, 1, 0),  # an object field
], ids=["item size", "object field"])
def test_ogb_split_file_with_a_crafted_numpy_dtype_is_refused(tmp_path, own_cache, state):
    folder = _small_ogbl_ddi(tmp_path / "root")
    edges = _array_pickle("f8", state, (1, 2), bytes(16))
    _torch_file_naming_numpy_1(folder / "split" / "target" / "valid.pt", {"edge": edges, "edge_neg": edges})
    with pytest.raises(ValueError, match=r"valid\.pt holds objects torch's safe loader refuses \(a numpy"):
        load_dataset("ogbl-ddi", root=tmp_path / "root")


def test_ogb_split_file_saved_with_numpy_2_loads(tmp_path, own_cache):
    folder = _small_ogbl_ddi(tmp_path / "root")
    torch.save({"edge": np.array([[0, 2], [1, 3]]), "edge_neg": np.array([[0, 3]])},
               folder / "split" / "target" / "valid.pt")
    assert b"numpy._core.multiarray" in (folder / "split" / "target" / "valid.pt").read_bytes()
    ddi = load_dataset("ogbl-ddi", root=tmp_path / "root")
    assert ddi.edge_split["valid"]["edge"].tolist() == [[0, 2], [1, 3]]
    assert ddi.edge_split["valid"]["edge_neg"].tolist() == [[0, 3]]


def test_ogb_split_file_linked_to_the_recorded_processed_file_is_not_trusted(tmp_path, own_cache, monkeypatch):
    marker = tmp_path / "payload-ran"
    folder = _small_ogbl_ddi(tmp_path / "root")
    load_dataset("ogbl-ddi", root=tmp_path / "root")  # ogb writes, gnnscale records
    [processed] = own_cache.glob("ogb/*/ogbl_ddi/processed/data_processed")
    # The data folder links a split file to that recorded file (its path follows from the data
    # folder's), and swaps the link for a payload once the file has been hashed a second time
    # (first for ogb's own read of it): a reader that hashes one file and loads another runs it.
    torch.save(Payload(marker), folder / "split" / "evil.pt")
    valid = folder / "split" / "target" / "valid.pt"
    valid.unlink()
    valid.symlink_to(processed)
    recorded, real_sha256, hashed = processed.read_bytes(), hashlib.sha256, []

    def swap_link():
        swapped = valid.with_name(".swap")
        swapped.symlink_to(folder / "split" / "evil.pt")
        os.replace(swapped, valid)

    class Sha256ThenSwap:
        def __init__(self, data=b""):
            self.hash, self.data = real_sha256(data), bytes(data)

        def update(self, data):
            self.hash.update(data)
            self.data += bytes(data)

        def hexdigest(self):
            if self.data == recorded:
                hashed.append(self.data)
                if len(hashed) == 2:
                    swap_link()
            return self.hash.hexdigest()

    monkeypatch.setattr(hashlib, "sha256", Sha256ThenSwap)
    with pytest.raises(ValueError, match=r"valid\.pt holds objects torch's safe loader refuses.*refusing"):
        load_dataset("ogbl-ddi", root=tmp_path / "root")
    assert not marker.exists()


def test_ogb_split_file_that_is_a_device_is_refused(tmp_path, own_cache):
    # Split files are read whole before torch sees them: a device (or a FIFO) must not be read.
    folder = _small_ogbl_ddi(tmp_path / "root")
    valid = folder / "split" / "target" / "valid.pt"
    valid.unlink()
    valid.symlink_to("/dev/zero")
    with pytest.raises(ValueError, match=r"valid\.pt is not a regular file"):
        load_dataset("ogbl-ddi", root=tmp_path / "root")


def _mirror(own_cache: Path) -> Path:
    [mirror] = own_cache.glob("ogb/*/ogbl_ddi")
    return mirror


def test_ogb_data_folder_entry_named_processed_in_another_case_is_not_mirrored(tmp_path, own_cache):
    # On a case-insensitive file system a link PROCESSED in the mirror is the mirror's processed/.
    marker = tmp_path / "payload-ran"
    folder = _small_ogbl_ddi(tmp_path / "root")
    _plant_with_its_sum(folder / "PROCESSED" / "data_processed", marker)
    ddi = load_dataset("ogbl-ddi", root=tmp_path / "root")
    assert ddi.graph.num_nodes == 4 and not marker.exists()
    mirrored = [entry.name for entry in _mirror(own_cache).iterdir()]
    assert [name for name in mirrored if name.casefold() == "processed"] == ["processed"]


def test_ogb_mirror_processed_folder_leading_out_of_the_cache_is_refused(tmp_path, own_cache):
    _small_ogbl_ddi(tmp_path / "root")
    load_dataset("ogbl-ddi", root=tmp_path / "root")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not gnnscale's")
    processed = _mirror(own_cache) / "processed"
    for entry in processed.iterdir():
        entry.unlink()
    processed.rmdir()
    processed.symlink_to(elsewhere)  # what a PROCESSED link becomes on a case-insensitive file system
    with pytest.raises(ValueError, match=r"processed must be a folder of gnnscale's cache entry .* refusing"):
        load_dataset("ogbl-ddi", root=tmp_path / "root")
    assert [entry.name for entry in elsewhere.iterdir()] == ["keep.txt"]


def test_ogb_folder_without_its_release_file_is_a_clear_error(tmp_path, own_cache, monkeypatch):
    folder = _small_ogbl_ddi(tmp_path / "root")
    (folder / "RELEASE_v1.txt").unlink()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # ogb would ask there whether to download again
    with pytest.raises(FileNotFoundError, match=r"ogbl_ddi has no RELEASE_v1\.txt"):
        load_dataset("ogbl-ddi", root=tmp_path / "root")


@pytest.mark.parametrize("missing", ["edge.csv.gz", "num-node-list.csv.gz"])
def test_ogb_missing_raw_file_is_a_clear_error_not_a_download(tmp_path, own_cache, monkeypatch, missing):
    import ogb.linkproppred.dataset as ogb_link

    def no_download(*args, **kwargs):
        raise AssertionError("ogb tried to download")

    monkeypatch.setattr(ogb_link, "decide_download", no_download)
    monkeypatch.setattr(ogb_link, "download_url", no_download)
    folder = _small_ogbl_ddi(tmp_path / "root")
    (folder / "raw" / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"raw/{missing} is missing .*does not download"):
        load_dataset("ogbl-ddi", root=tmp_path / "root")


def test_ogb_links_in_the_data_folder_that_lead_nowhere_are_left_out(tmp_path, own_cache):
    folder = _small_ogbl_ddi(tmp_path / "root")
    (folder / "notes").symlink_to(tmp_path / "nowhere")
    (folder / "loop").symlink_to(folder / "loop-back")
    (folder / "loop-back").symlink_to(folder / "loop")
    for _ in range(2):  # the second load reuses the mirror
        assert load_dataset("ogbl-ddi", root=tmp_path / "root").graph.num_nodes == 4
    assert not {"notes", "loop", "loop-back"} & {entry.name for entry in _mirror(own_cache).iterdir()}


def test_ogb_mirror_drops_links_to_entries_that_left_the_data_folder(tmp_path, own_cache):
    folder = _small_ogbl_ddi(tmp_path / "root")
    (folder / "mapping").mkdir()
    load_dataset("ogbl-ddi", root=tmp_path / "root")
    assert (_mirror(own_cache) / "mapping").is_symlink()
    (folder / "mapping").rmdir()
    load_dataset("ogbl-ddi", root=tmp_path / "root")
    assert not (_mirror(own_cache) / "mapping").is_symlink()


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


def _mat_with_replaced_bytes(path: Path, matrices: dict, old: list, new: list) -> Path:
    """A .mat file of ``matrices`` whose int32 index array ``old`` (it must occur once) reads ``new``:
    loadmat takes such arrays as they are."""
    scipy.io.savemat(path, matrices, do_compression=False)
    contents = path.read_bytes()
    old_bytes, new_bytes = (np.array(values, dtype="<i4").tobytes() for values in (old, new))
    assert contents.count(old_bytes) == 1
    path.write_bytes(contents.replace(old_bytes, new_bytes))
    return path


def test_mat_malformed_sparse_matrices_are_refused(tmp_path):
    line = sp.csc_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float64))
    groups = sp.csc_matrix(np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float64))
    files = [
        # column pointers far past the entries (scipy's tocoo writes out of bounds)
        _mat_with_replaced_bytes(tmp_path / "pointers.mat", {"network": sp.csc_matrix(np.eye(4))},
                                 [0, 1, 2, 3, 4], [0, 100000000, 0, 0, 4]),
        # a row index far outside the matrix
        _mat_with_replaced_bytes(tmp_path / "rows.mat", {"network": line}, [1, 0, 2, 1], [1, 0, 40000000, 1]),
        # a well-formed network, a malformed group matrix
        _mat_with_replaced_bytes(tmp_path / "groups.mat", {"network": sp.csc_matrix(np.eye(4)), "group": groups},
                                 [0, 2, 4], [0, 100000000, 4]),
    ]
    printed = _load_in_a_fresh_interpreter(None, *files).splitlines()
    assert len(printed) == 3 and all(line.startswith("ValueError: ") for line in printed), printed
    assert "pointers.mat: 'network' is a malformed sparse matrix" in printed[0]
    assert "rows.mat: 'network' is a malformed sparse matrix" in printed[1]
    assert "groups.mat: 'group' is a malformed sparse matrix" in printed[2]
