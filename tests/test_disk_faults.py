"""DiskTensor under faults of the filesystem and the kernel, injected into a child process with
LD_PRELOAD (tests/native/io_faults.c): a filesystem that refuses O_DIRECT, a kernel (or a
container's seccomp profile) that refuses io_uring, and a read error in the middle of a file."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHIM_SOURCE = Path(__file__).parent / "native" / "io_faults.c"
ROWS, WIDTH = 20000, 32  # 128-byte rows: 2.4 MiB of table, many blocks

CHILD = r"""
import json, sys, warnings
import numpy as np, torch
from gnnscale.storage import DiskTensor
path, engine, ids = sys.argv[1], sys.argv[2], torch.tensor(json.loads(sys.argv[3]))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    table = DiskTensor(path, engine=engine, cache_bytes=0)
report = {"engine": table.engine, "direct": table.direct, "fallback": table.fallback,
          "warnings": [str(w.message) for w in caught]}
expected = torch.from_numpy(np.load(path, mmap_mode="r")[ids.numpy()].copy())
try:
    report["equal"] = bool(torch.equal(table.gather(ids), expected))
except RuntimeError as error:
    report["error"] = str(error)
    report["after_error_equal"] = bool(torch.equal(table.gather(ids[:1]), expected[:1]))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler is needed to build the fault shim (the extension's build needs one too)"
    library = tmp_path_factory.mktemp("shim") / "io_faults.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(SHIM_SOURCE), "-ldl"], check=True)
    return library


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    array = np.random.default_rng(3).standard_normal((ROWS, WIDTH)).astype(np.float32)
    path = tmp_path_factory.mktemp("table") / "table.npy"
    np.save(path, array)
    return path


def _child(shim, path, engine, ids, **faults):
    environment = dict(os.environ, LD_PRELOAD=str(shim), **faults)
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), engine, json.dumps(ids)], env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


IDS = [0, 19999, 7, 7, 12345, 5000, 5001, 4999, 15000]


@pytest.mark.parametrize("engine", ["auto", "pread"])
def test_a_filesystem_refusing_direct_io_falls_back_to_the_page_cache_and_says_so(shim, table_file, engine):
    report = _child(shim, table_file, engine, IDS, IO_FAULTS_REFUSE_DIRECT="table.npy")
    assert report["direct"] is False
    assert report["equal"] is True
    assert "refused O_DIRECT" in report["fallback"]
    assert any("refused O_DIRECT" in message for message in report["warnings"])


def test_without_a_shim_fault_reads_are_direct_and_nothing_is_reported(shim, table_file):
    report = _child(shim, table_file, "auto", IDS)
    assert report == {"engine": "io_uring", "direct": True, "fallback": "", "warnings": [], "equal": True}


def test_a_kernel_refusing_io_uring_reads_with_pread_and_says_so(shim, table_file):
    report = _child(shim, table_file, "auto", IDS, IO_FAULTS_REFUSE_IO_URING="1")
    assert report["engine"] == "pread" and report["direct"] is True and report["equal"] is True
    assert "io_uring_setup failed" in report["fallback"] and "Operation not permitted" in report["fallback"]
    assert any("so reads use pread" in message for message in report["warnings"])


def test_io_uring_asked_for_explicitly_is_an_error_where_the_kernel_refuses_it(shim, table_file):
    environment = dict(os.environ, LD_PRELOAD=str(shim), IO_FAULTS_REFUSE_IO_URING="1")
    done = subprocess.run([sys.executable, "-c", CHILD, str(table_file), "io_uring", json.dumps(IDS)],
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "io_uring is not available here" in done.stderr


def test_a_read_error_in_the_middle_of_the_file_names_the_file_and_the_offset(shim, table_file):
    header = table_file.stat().st_size - ROWS * WIDTH * 4
    bad_row = 12345
    bad_byte = header + bad_row * WIDTH * 4 + 10
    report = _child(shim, table_file, "pread", IDS, IO_FAULTS_EIO_AT=str(bad_byte),
                    IO_FAULTS_REFUSE_IO_URING="1")
    assert "Input/output error" in report["error"]
    assert str(table_file) in report["error"] and "byte offset" in report["error"]
    assert report["after_error_equal"] is True  # row 0 is far from the bad block: the table still reads
