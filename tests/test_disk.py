"""DiskTensor: rows read from a file (io_uring or pread, O_DIRECT, coalesced) through a host cache."""
import os
import threading
import time

import numpy as np
import pytest
import torch

from gnnscale.storage import DiskTensor
from gnnscale.storage.unified import SUPPORTED_DTYPES

ENGINES = ["io_uring", "pread"]
POLICIES = ["s3fifo", "sieve", "clock"]


def _save(tmp_path, array, name="table.npy"):
    path = tmp_path / name
    np.save(path, array)
    return path


def _random_table(rows, width, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=(rows, width), dtype=dtype, endpoint=True)
    return rng.standard_normal((rows, width)).astype(dtype)


def _awkward_ids(num_rows, seed=0):
    """Unsorted, with duplicates, with the first and the last row of the table."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, num_rows, (300,), generator=gen)
    return torch.cat([ids, ids[:50], torch.tensor([num_rows - 1, 0, num_rows - 1])])


# ------------------------------------------------------------------ correctness of the reads

@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int32, np.uint8])
def test_gather_equals_in_ram_gather_for_each_dtype(tmp_path, engine, dtype):
    array = _random_table(1001, 7, dtype)
    table = DiskTensor(_save(tmp_path, array), engine=engine)
    ids = _awkward_ids(len(array))
    expected = torch.from_numpy(np.load(tmp_path / "table.npy"))[ids]
    assert table.dtype == expected.dtype and table.shape == (1001, 7)
    assert torch.equal(table.gather(ids), expected)
    assert table.engine == engine


@pytest.mark.parametrize("engine", ENGINES)
def test_bfloat16_raw_file_equals_in_ram_gather(tmp_path, engine):
    data = torch.randn(777, 13).to(torch.bfloat16)
    path = tmp_path / "table.bin"
    offset = 100  # rows start off any block boundary
    with open(path, "wb") as file:
        file.write(b"\xff" * offset)
        file.write(data.view(torch.uint8).numpy().tobytes())
    table = DiskTensor(path, dtype=torch.bfloat16, shape=(777, 13), offset=offset, engine=engine)
    ids = _awkward_ids(777)
    assert torch.equal(table.gather(ids), data[ids])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("width", [3, 100, 1000])
def test_rows_of_any_width_across_block_boundaries(tmp_path, engine, width):
    array = _random_table(1237, width)  # the file ends inside a block
    table = DiskTensor(_save(tmp_path, array), engine=engine)
    assert table.stats()["direct"] is True
    ids = _awkward_ids(len(array), seed=width)
    assert torch.equal(table.gather(ids), torch.from_numpy(array)[ids])
    assert torch.equal(table.gather(torch.arange(len(array))), torch.from_numpy(array))
    assert table.gather(torch.empty(0, dtype=torch.int64)).shape == (0, width)
    assert torch.equal(table[len(array) - 1], torch.from_numpy(array[-1:]))


def test_one_dimensional_npy_becomes_one_column(tmp_path):
    array = np.arange(50, dtype=np.int64)
    table = DiskTensor(_save(tmp_path, array))
    assert table.shape == (50, 1)
    assert torch.equal(table.gather(torch.tensor([49, 3, 3])), torch.tensor([[49], [3], [3]]))


def test_gather_into_positions_and_out(tmp_path):
    array = _random_table(300, 5)
    table = DiskTensor(_save(tmp_path, array))
    out = torch.zeros(6, 5)
    table.gather_into(torch.tensor([7, 299, 7]), out, positions=torch.tensor([5, 0, 2]))
    expected = torch.zeros(6, 5)
    expected[[5, 0, 2]] = torch.from_numpy(array)[[7, 299, 7]]
    assert torch.equal(out, expected)
    given = torch.empty(2, 5)
    assert table.gather(torch.tensor([1, 2]), out=given) is given
    with pytest.raises(ValueError, match="out must be"):
        table.gather(torch.tensor([1, 2]), out=torch.empty(3, 5))


def test_auto_engine_is_io_uring_on_this_kernel(tmp_path):
    table = DiskTensor(_save(tmp_path, _random_table(10, 2)))
    stats = table.stats()
    assert stats["engine"] == "io_uring", stats["fallback_note"]
    assert stats["direct"] is True


def test_buffered_reads_when_asked(tmp_path):
    array = _random_table(500, 9)
    table = DiskTensor(_save(tmp_path, array), direct=False)
    assert table.direct is False and table.stats()["block_bytes"] == 4096
    ids = _awkward_ids(500)
    assert torch.equal(table.gather(ids), torch.from_numpy(array)[ids])


# ------------------------------------------------------------------ coalescing

def test_consecutive_rows_read_only_their_aligned_span(tmp_path):
    array = _random_table(4000, 25)
    table = DiskTensor(_save(tmp_path, array))
    block, row_bytes = table.stats()["block_bytes"], table.row_bytes
    data_offset = (tmp_path / "table.npy").stat().st_size - array.nbytes
    first, count = 1234, 1500
    table.gather(torch.arange(first, first + count).flip(0))
    begin = (data_offset + first * row_bytes) // block * block
    end = -(-(data_offset + (first + count) * row_bytes) // block) * block
    stats = table.stats()
    assert stats["bytes_needed"] == count * row_bytes
    assert stats["bytes_read"] <= end - begin
    assert stats["extents"] <= -(-(end - begin) // (256 << 10))


@pytest.mark.parametrize("engine", ENGINES)
def test_scattered_rows_read_about_one_block_each(tmp_path, engine):
    row_bytes = 64
    probe = DiskTensor(_save(tmp_path, _random_table(8, 16), "probe.npy"))
    block = probe.stats()["block_bytes"]
    spacing = 4 * block // row_bytes + 1  # rows four blocks apart: no gap is worth reading
    k = 200
    array = _random_table(k * spacing, row_bytes // 4)
    table = DiskTensor(_save(tmp_path, array), engine=engine)
    ids = torch.randperm(k) * spacing + int(torch.randint(0, spacing, ()))
    assert torch.equal(table.gather(ids), torch.from_numpy(array)[ids])
    assert table.stats()["bytes_read"] <= 1.25 * k * block


# ------------------------------------------------------------------ the host cache

@pytest.mark.parametrize("policy", POLICIES)
def test_cache_serves_repeated_gathers_within_its_budget(tmp_path, policy):
    array = _random_table(2000, 30)
    budget = 300 * (120 + 96)  # 300 rows of 120 bytes with their bookkeeping
    table = DiskTensor(_save(tmp_path, array), cache_bytes=budget, cache_policy=policy)
    rows = torch.from_numpy(array)
    ids = torch.randperm(2000)[:200]
    assert torch.equal(table.gather(ids), rows[ids])
    read_once = table.stats()["bytes_read"]
    assert torch.equal(table.gather(ids.flip(0)), rows[ids.flip(0)])
    stats = table.stats()
    assert stats["bytes_read"] == read_once  # every row came from the cache
    assert stats["cache_hits"] == 200 and stats["hit_rate"] == 0.5
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):  # overlapping gathers that overflow the cache
        batch = torch.cat([ids[:50], torch.randint(0, 2000, (150,), generator=gen)])
        assert torch.equal(table.gather(batch), rows[batch])
        stats = table.stats()
        assert 0 < stats["cache_bytes_used"] <= budget
        assert stats["cache_rows"] <= 300
    assert stats["cache_evictions"] > 0


@pytest.mark.parametrize("policy", POLICIES)
def test_cache_keeps_hot_rows_under_a_scan(tmp_path, policy):
    array = _random_table(5000, 8)
    budget = 200 * (32 + 96)
    table = DiskTensor(_save(tmp_path, array), cache_bytes=budget, cache_policy=policy)
    hot = torch.arange(100)
    for _ in range(3):
        table.gather(hot)
    for start in range(100, 5000, 100):  # a scan of rows used once
        table.gather(hot)
        table.gather(torch.arange(start, start + 100))
    before = table.stats()["cache_hits"]
    table.gather(hot)
    assert table.stats()["cache_hits"] - before >= 90


def test_static_cache_holds_its_rows_and_admits_nothing(tmp_path):
    array = _random_table(1000, 10)
    hot = torch.tensor([5, 900, 17, 5])
    table = DiskTensor.with_static_cache(_save(tmp_path, array), hot)
    rows = torch.from_numpy(array)
    loaded = table.stats()["bytes_read"]
    ids = torch.tensor([900, 17, 5, 17])
    assert torch.equal(table.gather(ids), rows[ids])
    stats = table.stats()
    assert stats["bytes_read"] == loaded and stats["cache_hits"] == 3 and stats["cache_rows"] == 3
    table.gather(torch.tensor([1, 2, 3]))
    table.gather(torch.tensor([1, 2, 3]))
    assert table.stats()["cache_rows"] == 3 and table.stats()["cache_misses"] == 6
    with pytest.raises(ValueError, match="do not fit"):
        DiskTensor(tmp_path / "table.npy", cache_bytes=100, cache_policy="static", hot_ids=hot)
    with pytest.raises(ValueError, match="hot_ids"):
        DiskTensor(tmp_path / "table.npy", cache_bytes=10000, cache_policy="static")


@pytest.mark.parametrize("policy", POLICIES + ["none"])
def test_concurrent_gathers_return_the_right_rows(tmp_path, policy):
    array = _random_table(3000, 37)
    options = {} if policy == "none" else {"cache_bytes": 500 * (148 + 96), "cache_policy": policy}
    table = DiskTensor(_save(tmp_path, array), **options)
    rows = torch.from_numpy(array)
    failures = []

    def gather_many(seed):
        gen = torch.Generator().manual_seed(seed)
        for _ in range(15):
            ids = torch.randint(0, 3000, (400,), generator=gen) % (300 + 900 * (seed % 2))
            if not torch.equal(table.gather(ids), rows[ids]):
                failures.append(seed)

    threads = [threading.Thread(target=gather_many, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    if policy != "none":
        assert table.stats()["cache_hits"] > 0
        assert table.stats()["cache_bytes_used"] <= 500 * (148 + 96)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gathers_with_a_ring_of_its_own(tmp_path):
    array = _random_table(400, 6)
    table = DiskTensor(_save(tmp_path, array))
    ids = torch.randperm(400)[:100]
    expected = torch.from_numpy(array)[ids]
    assert torch.equal(table.gather(ids), expected)  # this thread's ring exists before the fork
    child = os.fork()
    if child == 0:  # a DataLoader worker, say
        try:
            os._exit(0 if torch.equal(table.gather(ids), expected) else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 20
    while (status := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if status[0] == 0:
        os.kill(child, 9)
        os.waitpid(child, 0)
        pytest.fail("the forked child did not finish its gather")
    assert os.waitstatus_to_exitcode(status[1]) == 0
    assert torch.equal(table.gather(ids), expected)


# ------------------------------------------------------------------ the GIL

def _count_while(action):
    """How fast a Python thread counts while `action` runs in this one (counts/s), and how long it ran."""
    counter = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1

    thread = threading.Thread(target=count)
    thread.start()
    time.sleep(0.02)
    start_count, start = counter[0], time.perf_counter()
    action()
    elapsed = time.perf_counter() - start
    counted = counter[0] - start_count
    stop.set()
    thread.join()
    return counted / elapsed, elapsed


def test_gather_releases_the_gil(tmp_path):
    array = _random_table(8192, 1024, np.uint8)
    table = DiskTensor(_save(tmp_path, array), engine="pread")
    ids = torch.randperm(8192)
    # Many gathers of a few rows each would mostly measure Python: one call must take a while.
    while True:
        rate_during, elapsed = _count_while(lambda: table.gather(ids))
        if elapsed >= 0.2 or ids.numel() >= 8192 * 64:
            break
        ids = torch.cat([ids, ids])
    rate_alone, _ = _count_while(lambda: time.sleep(0.1))
    # With the GIL held the counter could run only in the switch interval before the call.
    assert elapsed >= 0.1
    assert rate_during > 0.1 * rate_alone, (rate_during, rate_alone, elapsed)


# ------------------------------------------------------------------ bad input

def test_truncated_npy_is_refused(tmp_path):
    path = _save(tmp_path, _random_table(100, 10))
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size - 40)
    with pytest.raises(ValueError, match="truncated"):
        DiskTensor(path)


def test_raw_file_of_the_wrong_size_is_refused(tmp_path):
    path = tmp_path / "table.bin"
    path.write_bytes(bytes(4 * 10 * 3 + 1))
    with pytest.raises(ValueError, match="trailing"):
        DiskTensor(path, dtype=torch.float32, shape=(10, 3))
    with pytest.raises(ValueError, match="truncated"):
        DiskTensor(path, dtype=torch.float32, shape=(11, 3))
    with pytest.raises(ValueError, match="dtype"):
        DiskTensor(path, dtype=torch.float64, shape=(10, 3))


def test_object_fortran_and_three_dimensional_npy_are_refused(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="objects"):
        DiskTensor(tmp_path / "objects.npy")
    np.save(tmp_path / "fortran.npy", np.asfortranarray(_random_table(20, 4)))
    with pytest.raises(ValueError, match="Fortran"):
        DiskTensor(tmp_path / "fortran.npy")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        DiskTensor(tmp_path / "cube.npy")
    np.save(tmp_path / "doubles.npy", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="float64"):
        DiskTensor(tmp_path / "doubles.npy")
    with pytest.raises(FileNotFoundError):
        DiskTensor(tmp_path / "missing.npy")


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_ids_are_refused(tmp_path, engine):
    table = DiskTensor(_save(tmp_path, _random_table(100, 4)), engine=engine)
    with pytest.raises(ValueError, match="out of range"):
        table.gather(torch.tensor([3, 100]))
    with pytest.raises(ValueError, match="negative"):
        table.gather(torch.tensor([3, -1]))
    with pytest.raises(ValueError, match="int32 or int64"):
        table.gather(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="engine"):
        DiskTensor(tmp_path / "table.npy", engine="aio")
    with pytest.raises(ValueError, match="cache_policy"):
        DiskTensor(tmp_path / "table.npy", cache_bytes=1000, cache_policy="lru")


@pytest.mark.parametrize("engine", ENGINES)
def test_file_cut_short_after_opening_is_an_error_naming_it(tmp_path, engine):
    array = _random_table(5000, 16)
    path = _save(tmp_path, array)
    table = DiskTensor(path, engine=engine)
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size // 2)
    with pytest.raises(RuntimeError, match="shorter than the table"):
        table.gather(torch.tensor([4999]))
    assert torch.equal(table.gather(torch.tensor([1])), torch.from_numpy(array[1:2]))


def test_every_supported_dtype_is_covered():
    covered = {torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8}
    assert covered == set(SUPPORTED_DTYPES)


# ------------------------------------------------------------------ behind the loaders and caches

def test_a_loader_over_a_disk_table_yields_the_batches_of_the_in_ram_table(tmp_path):
    from gnnscale import Graph
    from gnnscale.loader import NodeLoader

    num_nodes = 2_000
    table = _random_table(num_nodes, 37)
    graph = Graph.from_edge_index(torch.randint(0, num_nodes, (2, 20_000), generator=torch.Generator().manual_seed(1)),
                                  num_nodes)
    on_disk = DiskTensor(_save(tmp_path, table), cache_bytes=1 << 20)
    seeds = torch.arange(0, num_nodes, 3)
    batches = [NodeLoader(graph, features, seeds, [5, 3], 128, seed=4, num_threads=2)
               for features in (torch.from_numpy(table), on_disk)]
    count = 0
    for in_ram, from_disk in zip(*(loader.iterate(1) for loader in batches)):
        assert torch.equal(in_ram.subgraph.node, from_disk.subgraph.node)
        assert torch.equal(in_ram.x, from_disk.x)
        count += 1
    assert count == len(batches[0]) and on_disk.stats()["rows_from_disk"] > 0


def test_a_feature_cache_over_a_disk_table_serves_hits_and_misses_exactly(tmp_path):
    from gnnscale.storage import FeatureCache

    table = _random_table(1_000, 20)
    cache = FeatureCache(DiskTensor(_save(tmp_path, table)), torch.arange(0, 1_000, 2), device="cpu")
    ids = _awkward_ids(1_000)
    assert torch.equal(cache.gather(ids), torch.from_numpy(table)[ids])
    assert 0 < cache.hit_rate < 1
