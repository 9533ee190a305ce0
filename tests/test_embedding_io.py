"""Embedding files: outputs written as a unit, ids that survive every format, malformed files refused."""
import errno
import os

import numpy as np
import pytest
import torch

import gnnscale.atomic
from gnnscale.atomic import write_files_together
from gnnscale.embedding import Embeddings, load_embeddings, save_embeddings

AWKWARD_IDS = ["alice smith", "back\\slash", "tab\there", "new\nline", "carriage\rreturn", "\\s", "", "plain"]


def embeddings(rows=4, dim=3, seed=0, context=True, names=None):
    gen = torch.Generator().manual_seed(seed)
    return Embeddings(vertex=torch.randn(rows, dim, generator=gen),
                      context=torch.randn(rows, dim, generator=gen) if context else None,
                      names=None if names is None else np.array(names))


def fail_second_fsync(monkeypatch):
    """The second file of an output hits a full disk."""
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)
    monkeypatch.setattr(gnnscale.atomic.os, "fsync", fsync)


def snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("suffix", [".txt", ".npy"])
def test_full_disk_leaves_no_partial_output(tmp_path, monkeypatch, suffix):
    fail_second_fsync(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        save_embeddings(embeddings(), tmp_path / f"emb{suffix}", with_context=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".txt", ".npy"])
def test_full_disk_keeps_the_previous_output(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"emb{suffix}"
    previous = embeddings(seed=1, names=["a", "b", "c", "d"])
    save_embeddings(previous, path, with_context=True)
    before = snapshot(tmp_path)
    fail_second_fsync(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        save_embeddings(embeddings(seed=2, names=["w", "x", "y", "z"]), path, with_context=True)
    assert snapshot(tmp_path) == before
    loaded = load_embeddings(path)
    torch.testing.assert_close(loaded.vertex, previous.vertex, rtol=1e-5, atol=1e-6)
    assert list(loaded.ids) == ["a", "b", "c", "d"]


def test_npy_goes_into_place_after_its_ids_and_context(tmp_path, monkeypatch):
    renamed = []
    real_replace = os.replace

    def replace(source, target):
        renamed.append(os.path.basename(target))
        real_replace(source, target)
    monkeypatch.setattr(gnnscale.atomic.os, "replace", replace)
    save_embeddings(embeddings(), tmp_path / "emb.npy", with_context=True)
    assert renamed == ["emb.ids.txt", "emb.context.npy", "emb.npy"]


@pytest.mark.parametrize("suffix", [".txt", ".npy"])
def test_a_stale_context_file_is_removed(tmp_path, suffix):
    path = tmp_path / f"emb{suffix}"
    save_embeddings(embeddings(context=True), path, with_context=True)
    save_embeddings(embeddings(context=False, seed=3), path)  # LINE first order: no context table
    assert load_embeddings(path).context is None
    assert not (tmp_path / f"emb.context{suffix}").exists()


def test_writing_together_fails_before_any_rename(tmp_path):
    (tmp_path / "first").write_text("old first")

    def broken(stream):
        raise RuntimeError("cannot write")
    with pytest.raises(RuntimeError):
        write_files_together([(tmp_path / "first", lambda s: s.write(b"new first"), "wb"),
                              (tmp_path / "second", broken, "wb")])
    assert snapshot(tmp_path) == {"first": b"old first"}


def test_npy_without_its_ids_file_is_refused(tmp_path):
    np.save(tmp_path / "emb.npy", np.ones((3, 2), dtype=np.float32))
    with pytest.raises(FileNotFoundError, match="emb.ids.txt"):
        load_embeddings(tmp_path / "emb.npy")


@pytest.mark.parametrize("suffix", [".txt", ".npy", ".npz", ".pt"])
def test_awkward_node_ids_round_trip_exactly(tmp_path, suffix):
    original = embeddings(rows=len(AWKWARD_IDS), names=AWKWARD_IDS)
    path = save_embeddings(original, tmp_path / f"emb{suffix}", with_context=True)
    loaded = load_embeddings(path)
    assert list(loaded.ids) == AWKWARD_IDS
    torch.testing.assert_close(loaded.vertex, original.vertex, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loaded.context, original.context, rtol=1e-5, atol=1e-6)


def test_word2vec_text_keeps_one_node_per_line(tmp_path):
    path = save_embeddings(embeddings(rows=2, dim=2, context=False, names=["alice smith", "bob"]), tmp_path / "e.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and lines[1].startswith("alice\\ssmith ") and len(lines[1].split(" ")) == 3


def test_word2vec_text_from_the_original_tool_reads(tmp_path):
    path = tmp_path / "w2v.txt"
    path.write_text("2 2\na 0.5 1 \nb -1 2e-3 \n")  # the C tool ends each row with a space
    loaded = load_embeddings(path)
    assert list(loaded.ids) == ["a", "b"]
    torch.testing.assert_close(loaded.vertex, torch.tensor([[0.5, 1.0], [-1.0, 2e-3]]))


@pytest.mark.parametrize("text, message", [
    ("3 2\na 1 2\nb 3 4\n", "line 1 announces 3 rows, the file has 2"),
    ("1 2\na 1 2\nb 3 4\n", "line 3: more rows than the 1 line 1 announces"),
    ("two 2\na 1 2\n", "line 1 must be '<count> <dimension>'"),
    ("2\na 1 2\n", "line 1 must be '<count> <dimension>'"),
    ("1 0\na\n", "line 1 must be '<count> <dimension>'"),
    ("2 2\na 1 2\nb 3\n", "line 3 has 1 values, expected 2"),
    ("2 2\na 1 2\nb 3 4 5\n", "line 3 has 3 values, expected 2"),
    ("2 2\na 1 2\nb 3 four\n", "line 3 has a value that is not a number: 'four'"),
    ("2 2\na 1 2\nb nan 4\n", r"line 3 \(node 'b'\) has NaN or infinite values"),
    ("2 2\na inf 2\nb 3 4\n", r"line 2 \(node 'a'\) has NaN or infinite values"),
])
def test_malformed_word2vec_text_names_the_line(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_embeddings(path)


def test_non_finite_and_misshapen_tables_are_refused(tmp_path):
    vertex = np.ones((3, 2), dtype=np.float32)
    vertex[1, 0] = np.nan
    np.savez(tmp_path / "nan.npz", vertex=vertex, ids=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match=r"NaN or infinite values in row 1 \(node 'b'\)"):
        load_embeddings(tmp_path / "nan.npz")
    np.savez(tmp_path / "other.npz", table=np.ones((3, 2)))
    with pytest.raises(ValueError, match="no 'vertex' array"):
        load_embeddings(tmp_path / "other.npz")
    np.save(tmp_path / "flat.npy", np.ones(3, dtype=np.float32))
    (tmp_path / "flat.ids.txt").write_text("a\nb\nc\n")
    with pytest.raises(ValueError, match="must be 2-D"):
        load_embeddings(tmp_path / "flat.npy")
    torch.save({"vertex": torch.tensor([[1.0, float("inf")]])}, tmp_path / "inf.pt")
    with pytest.raises(ValueError, match="row 0"):
        load_embeddings(tmp_path / "inf.pt")
