import warnings

import numpy as np
import pytest
import torch

from conftest import requires_cuda
from gnnscale import ops
from gnnscale.datasets import generate_synthetic
from gnnscale.sampling import NeighborSampler
from gnnscale.storage import FeatureCache, FeatureStore, UnifiedTensor
from gnnscale.storage.unified import short_row_warning
from gnnscale.train import NodeTask, Trainer

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8]
WIDTHS = [1, 3, 5, 16, 33, 128]  # row bytes that are and are not multiples of 16


def table_of(dtype, rows, width, seed=0):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 250, (rows, width), generator=gen)
    return values.to(dtype)


def quiet(data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short rows warn about PCIe efficiency
        return UnifiedTensor(data, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", WIDTHS)
def test_gather_equals_index_select(dtype, width):
    table = table_of(dtype, 1000, width)
    unified = quiet(table)
    gen = torch.Generator().manual_seed(1)
    index = torch.randint(0, 1000, (700,), generator=gen)  # unsorted, with repeats
    for sort in (False, True):
        assert torch.equal(unified.gather(index, sort=sort), table.index_select(0, index))
    assert torch.equal(unified.gather(index.to(torch.int32)), table.index_select(0, index))
    assert unified.gather(torch.empty(0, dtype=torch.long)).shape == (0, width)
    repeated = torch.full((50,), 7)
    assert torch.equal(unified.gather(repeated), table[repeated])


def test_gather_into_positions_and_out_argument():
    table = table_of(torch.float32, 100, 9)
    unified = UnifiedTensor(table)
    out = torch.zeros(6, 9)
    unified.gather_into(torch.tensor([5, 6, 7]), out, positions=torch.tensor([4, 0, 2]))
    assert torch.equal(out[[4, 0, 2]], table[[5, 6, 7]]) and bool((out[[1, 3, 5]] == 0).all())
    reused = torch.empty(3, 9)
    assert unified.gather(torch.tensor([1, 2, 3]), out=reused) is reused
    with pytest.raises(ValueError, match="out must be"):
        unified.gather(torch.tensor([1, 2]), out=torch.empty(3, 9))


def test_memory_mapped_table(tmp_path):
    table = table_of(torch.int32, 5000, 40)
    np.save(tmp_path / "features.npy", table.numpy())
    unified = UnifiedTensor.from_npy(tmp_path / "features.npy")
    assert isinstance(np.load(tmp_path / "features.npy", mmap_mode="r"), np.memmap)
    index = torch.randint(0, 5000, (3000,))
    assert torch.equal(unified.gather(index, sort=True), table[index])
    half = UnifiedTensor.from_npy(tmp_path / "features.npy", dtype=torch.float16)
    assert half.dtype == torch.float16 and torch.equal(half.gather(index).float(), table[index].float())
    with pytest.raises(FileNotFoundError):
        UnifiedTensor.from_npy(tmp_path / "absent.npy")


def test_bad_input():
    unified = UnifiedTensor(table_of(torch.float32, 10, 32))
    with pytest.raises(ValueError, match="out of range"):
        unified.gather(torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="negative"):
        unified.gather(torch.tensor([-1]))
    with pytest.raises(ValueError, match="2-D"):
        UnifiedTensor(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="unsupported dtype"):
        UnifiedTensor(torch.zeros(4, 4, dtype=torch.float64))


def test_short_rows_warn_only_for_gathers_onto_a_gpu():
    message = short_row_warning(32, "cuda")
    assert message.startswith("rows of 32 bytes are shorter than a 128-byte PCIe request")
    assert short_row_warning(32, torch.device("cuda", 1)) == message
    assert short_row_warning(32, "cpu") is None  # no PCIe between the table and the CPU
    assert short_row_warning(128, "cuda") is None  # float16 rows of 64 values: exactly one request
    table = torch.arange(80, dtype=torch.float32).reshape(10, 8)  # 32-byte rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unified = UnifiedTensor(table)
        assert torch.equal(unified.gather(torch.tensor([3, 1]), device="cpu"), table[[3, 1]])
        cache = FeatureCache(unified, torch.tensor([1, 2]), device="cpu")
        assert torch.equal(cache.gather(torch.tensor([2, 5])), table[[2, 5]])


def test_cpu_training_on_short_feature_rows_does_not_warn_of_pcie():
    dataset = generate_synthetic(300, 2000, 8, 3, seed=0)  # float32 features: 32-byte rows
    assert dataset.features.shape[1] * dataset.features.element_size() == 32
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Trainer(NodeTask(dataset, "sage", fanouts=[5, 5], batch_size=64, hidden=16), epochs=1,
                         progress=False).fit()
    assert result.epochs_trained == 1
    assert [str(w.message) for w in caught if "PCIe" in str(w.message)] == []


@requires_cuda
@pytest.mark.parametrize("pinned", [False, True])
def test_the_first_gpu_gather_of_short_rows_warns_once(pinned):
    table = torch.arange(80, dtype=torch.float32).reshape(10, 8)
    unified = UnifiedTensor(table)
    if pinned:
        unified.pin_()
    with pytest.warns(UserWarning, match="rows of 32 bytes are shorter than a 128-byte PCIe request"):
        rows = unified.gather(torch.tensor([3, 1]), device="cuda")
    assert torch.equal(rows.cpu(), table[[3, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unified.gather(torch.tensor([0]), device="cuda")  # said once per table
    unified.unpin_()


def test_pinning_without_cuda_is_a_no_op():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only behaviour")
    unified = UnifiedTensor(torch.zeros(10, 32))
    assert not unified.pin_().is_pinned
    unified.unpin_()


@requires_cuda
def test_pin_registers_in_place_once_and_unpins_once():
    table = torch.zeros(1000, 64)
    unified = UnifiedTensor(table)
    pointer = table.data_ptr()
    unified.pin_().pin_()
    assert unified.is_pinned and len(unified._pinned) == 1 and unified.data.data_ptr() == pointer
    assert unified.data.is_pinned()
    unified.unpin_().unpin_()
    assert not unified.is_pinned and not table.is_pinned()


@requires_cuda
def test_tables_over_one_tensor_share_its_page_lock():
    table = torch.randn(1000, 64)
    first, second = UnifiedTensor(table).pin_(), UnifiedTensor(table).pin_()
    index = torch.randint(0, 1000, (500,))
    first.unpin_()
    assert second.is_pinned and table.is_pinned()  # still locked: the second table reads it
    assert torch.equal(second.gather(index, device="cuda").cpu(), table.index_select(0, index))
    second.unpin_()
    assert not table.is_pinned()


@requires_cuda
def test_memory_pinned_elsewhere_is_read_and_left_pinned():
    table = torch.randn(1000, 64).pin_memory()
    unified = UnifiedTensor(table).pin_()
    index = torch.randint(0, 1000, (500,))
    assert unified.is_pinned
    assert torch.equal(unified.gather(index, device="cuda").cpu(), table.index_select(0, index))
    unified.unpin_()
    assert table.is_pinned()


@requires_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", WIDTHS)
def test_zero_copy_gpu_gather_equals_index_select(dtype, width):
    table = table_of(dtype, 3000, width)
    unified = quiet(table).pin_()
    index = torch.randint(0, 3000, (2000,))
    expected = table.index_select(0, index)
    for sort in (False, True):
        assert torch.equal(unified.gather(index, device="cuda", sort=sort).cpu(), expected)
    out = torch.empty(2000, width, dtype=dtype, device="cuda")
    ops.gather_rows(unified.data, index.cuda(), out, align_reads=False, max_blocks=3)
    assert torch.equal(out.cpu(), expected)
    unified.unpin_()
    # Unpinned: CPU gather into pinned staging, then an asynchronous copy.
    assert torch.equal(quiet(table).gather(index, device="cuda").cpu(), expected)


def test_a_table_larger_than_memory_opens_mapped(tmp_path):
    """A copy-on-write mapping of a file larger than memory and swap is refused by the kernel's
    overcommit heuristic unless it reserves nothing: the table must still open, read on demand."""
    from gnnscale.npy import npy_header

    rows, width = (64 << 30) // 512, 128  # 64 GiB of float32, a sparse file: nothing is written
    path = tmp_path / "big.npy"
    header = npy_header(np.dtype(np.float32), (rows, width))
    with open(path, "wb") as file:
        file.write(header)
        file.write(np.arange(width, dtype=np.float32).tobytes())
        file.truncate(len(header) + rows * width * 4)
    table = UnifiedTensor.from_npy(path)
    assert table.shape == (rows, width)
    assert torch.equal(table.gather(torch.tensor([0, rows - 1])),
                       torch.stack([torch.arange(width, dtype=torch.float32), torch.zeros(width)]))


def test_cache_serves_hits_and_misses_correctly():
    table = table_of(torch.float32, 500, 40)
    unified = UnifiedTensor(table)
    cache = FeatureCache(unified, torch.tensor([1, 5, 9, 100]), device="cpu")
    index = torch.tensor([5, 2, 100, 5, 499, 1])
    assert torch.equal(cache.gather(index), table[index])
    assert cache.requests == 6 and cache.hits == 4 and cache.hit_rate == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="hot_ids"):
        FeatureCache(unified, torch.tensor([500]), device="cpu")


def test_cache_by_degree_and_by_presampling_fill_the_budget():
    data = generate_synthetic(20000, 200000, 32, 4, seed=0)
    unified = UnifiedTensor(data.features)
    budget = 1000 * unified.row_bytes  # 5% of the rows
    by_degree = FeatureCache.by_degree(unified, data.graph, budget, device="cpu")
    assert by_degree.num_cached == 1000
    top = torch.topk(data.graph.degree("in"), 1000).indices
    assert bool((by_degree.slot[top] >= 0).all())
    sampler = NeighborSampler(data.graph, [5, 5])
    presampled = FeatureCache.by_presampling(unified, sampler, torch.arange(20000), budget, device="cpu",
                                             batch_size=64, num_batches=8)
    assert presampled.num_cached == 1000
    batch = sampler.sample(torch.arange(1000, 1064), seed=99).node
    assert torch.equal(presampled.gather(batch), data.features[batch])
    assert torch.equal(by_degree.gather(batch), data.features[batch])
    # Hot nodes make up far more of a sample than their 5% share of the nodes.
    assert presampled.hit_rate > 0.15 and by_degree.hit_rate > 0.15


class ReferenceFrequencyCache:
    """The "frequency" policy a node at a time: request counts; every few gathers the cache holds
    the most requested nodes (ties to the lower id, none never requested) and the counts halve."""

    def __init__(self, capacity, refresh_every):
        self.capacity, self.refresh_every, self.gathers = capacity, refresh_every, 0
        self.counts, self.cached = {}, set()

    def gather(self, ids):
        hits = sum(node in self.cached for node in ids)
        for node in ids:
            self.counts[node] = self.counts.get(node, 0) + 1
        self.gathers += 1
        if self.gathers % self.refresh_every == 0:
            ranked = sorted((node for node, count in self.counts.items() if count > 0),
                            key=lambda node: (-self.counts[node], node))
            self.cached = set(ranked[:self.capacity])
            self.counts = {node: count // 2 for node, count in self.counts.items()}
        return hits


def test_frequency_cache_follows_a_reference_and_serves_exact_rows():
    table = table_of(torch.float32, 300, 12)
    cache = FeatureCache.dynamic(UnifiedTensor(table), 40 * 12 * 4, device="cpu", refresh_every=3)
    assert cache.capacity == 40 and cache.num_cached == 0
    reference, hits = ReferenceFrequencyCache(40, 3), 0
    gen = torch.Generator().manual_seed(3)
    skewed = torch.distributions.Categorical(probs=1.0 / torch.arange(1, 301).double())
    for step in range(60):
        size = int(torch.randint(1, 120, (1,), generator=gen))  # some gathers ask for more rows than fit
        torch.manual_seed(step)
        index = skewed.sample((size,))
        if step == 30:
            index = index[:0]  # an empty gather counts as one
        assert torch.equal(cache.gather(index), table[index])
        hits += reference.gather(index.tolist())
        owned = cache.owner[cache.owner >= 0]
        assert set(owned.tolist()) == reference.cached and cache.hits == hits
        assert torch.equal(cache.slot[owned].long(), torch.nonzero(cache.owner >= 0).flatten())
        assert int((cache.slot >= 0).sum()) == owned.numel()  # no stale slot left by an eviction
        assert torch.equal(cache.rows[cache.slot[owned].long()], table[owned])
    assert cache.rows.shape == (40, 12)  # the budget, however many rows passed through
    assert 0.3 < cache.hit_rate < 1


def test_frequency_cache_adapts_where_a_static_one_goes_stale():
    """Batches drawn from a hot set that moves every 20 gathers: the counts catch up within a few
    refreshes, the rows chosen for the first hot set stop serving."""
    table = table_of(torch.float32, 5000, 8)
    budget = 400 * 8 * 4
    gen = torch.Generator().manual_seed(0)
    first_hot = torch.randperm(5000, generator=gen)[:300]
    static = FeatureCache(UnifiedTensor(table), first_hot, device="cpu")
    dynamic = FeatureCache.dynamic(UnifiedTensor(table), budget, device="cpu", warm_ids=first_hot, refresh_every=2)
    assert dynamic.num_cached == 300 and dynamic.capacity == 400
    hot = first_hot
    for step in range(80):
        if step and step % 20 == 0:
            hot = torch.randperm(5000, generator=gen)[:300]
        index = torch.cat([hot[torch.randint(0, 300, (900,), generator=gen)], torch.randint(0, 5000, (100,), generator=gen)])
        assert torch.equal(static.gather(index), table[index]) and torch.equal(dynamic.gather(index), table[index])
    assert static.hit_rate < 0.35 and dynamic.hit_rate > 0.75, (static.hit_rate, dynamic.hit_rate)


def test_frequency_cache_in_front_of_the_disk_tier_reports_every_tier(tmp_path):
    from gnnscale.storage import DiskTensor
    from gnnscale.train.node import feature_tiers

    table = table_of(torch.float32, 3000, 32)
    np.save(tmp_path / "x.npy", table.numpy())
    disk = DiskTensor(tmp_path / "x.npy", cache_bytes=500 * (128 + 96))
    cache = FeatureCache.dynamic(disk, 200 * 128, device="cpu")
    distinct_misses, refreshed = 0, 0
    for step in range(20):
        index = torch.randint(0, 600 if step % 2 else 3000, (700,), generator=torch.Generator().manual_seed(step))
        distinct_misses += index[cache.slot[index] < 0].unique().numel()
        before = cache.refreshed_rows
        assert torch.equal(cache.gather(index), table[index])
        refreshed += int(cache.refreshed_rows > before)  # a refresh's reads: one more request per row
    tiers = feature_tiers(cache)
    assert set(tiers) == {"device_cache", "host_cache", "disk"}
    assert tiers["device_cache"]["requests"] == 20 * 700 and 0 < tiers["device_cache"]["hit_rate"] < 1
    assert refreshed and tiers["host_cache"]["requests"] == distinct_misses + cache.refreshed_rows


def test_cache_policy_and_capacity_are_checked():
    unified = UnifiedTensor(table_of(torch.float32, 50, 4))
    with pytest.raises(ValueError, match="policy"):
        FeatureCache(unified, torch.tensor([1]), device="cpu", policy="lru")
    with pytest.raises(ValueError, match="capacity"):
        FeatureCache(unified, torch.tensor([1, 2]), device="cpu", policy="frequency", capacity=1)
    with pytest.raises(ValueError, match="refresh_every"):
        FeatureCache.dynamic(unified, 1000, device="cpu", refresh_every=0)
    with pytest.raises(ValueError, match="static"):
        FeatureCache(unified, torch.tensor([1]), device="cpu", capacity=5)
    empty = FeatureCache.dynamic(unified, 0, device="cpu")  # a budget below one row: every gather misses
    assert torch.equal(empty.gather(torch.tensor([3, 3])), unified.gather(torch.tensor([3, 3])))
    assert empty.hits == 0 and empty.capacity == 0


@requires_cuda
def test_gpu_cache_with_pinned_source():
    table = table_of(torch.float32, 2000, 64)
    unified = UnifiedTensor(table).pin_()
    cache = FeatureCache(unified, torch.arange(0, 2000, 3), device="cuda")
    index = torch.randint(0, 2000, (1500,))
    assert torch.equal(cache.gather(index).cpu(), table[index])
    unified.unpin_()


def test_feature_store_follows_pyg_interface():
    from torch_geometric.data import TensorAttr

    table = table_of(torch.float32, 50, 32)
    store = FeatureStore()
    store.put_tensor(table, group_name=None, attr_name="x", index=None)
    assert torch.equal(store.get_tensor(group_name=None, attr_name="x", index=torch.tensor([3, 1])), table[[3, 1]])
    assert torch.equal(store[None, "x", torch.tensor([7])], table[[7]])
    assert store.get_tensor_size(group_name=None, attr_name="x") == (50, 32)
    assert store.get_all_tensor_attrs() == [TensorAttr(group_name=None, attr_name="x")]
    both = store.multi_get_tensor([TensorAttr(None, "x", torch.tensor([0])), TensorAttr(None, "x", torch.tensor([2]))])
    assert torch.equal(both[0], table[[0]]) and torch.equal(both[1], table[[2]])
    assert store.remove_tensor(group_name=None, attr_name="x", index=None)
    assert store.get_all_tensor_attrs() == []
