"""Row-gather bandwidth: gnnscale's UnifiedTensor against torch.index_select and plain copy
bandwidth measured in the same run, for rows of 64 B to 4 KB from a table of --table-gb GB: into
one reused output, into an output from the loaders' ring of buffers (as loaders gather), and into
a fresh output per gather.

GB/s counts bytes read plus bytes written. On a CUDA machine it also measures the zero-copy GPU
gather against pinned host-to-device cudaMemcpy bandwidth and against CPU gather + copy, with
128-byte read alignment on and off and with sorted and unsorted indices.

    python bench/gather.py [--table-gb 2] [--gathered-mb 512]
"""
import argparse
import time
import warnings

import torch

from common import write_result
from gnnscale import ops
from gnnscale.loader.buffers import BufferRing
from gnnscale.storage import UnifiedTensor

ROW_BYTES = (64, 128, 256, 512, 1024, 4096)


def seconds(fn, repeats=3):
    fn()
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def cases(flat, gathered_bytes):
    """For each row size: the table viewed with that row size, wrapped, and random row ids."""
    for row_bytes in ROW_BYTES:
        width = row_bytes // 4
        table = flat[: flat.numel() // width * width].view(-1, width)
        unified = UnifiedTensor(table)
        count = gathered_bytes // row_bytes
        yield row_bytes, table, unified, torch.randint(0, table.size(0), (count,))


def cpu_rows(table_bytes, gathered_bytes):
    flat = torch.empty(table_bytes // 4, dtype=torch.float32).uniform_()
    copy_target = torch.empty_like(flat)
    copy_gbs = 2 * flat.numel() * 4 / seconds(lambda: copy_target.copy_(flat)) / 1e9
    del copy_target
    print(f"plain copy (memcpy) bandwidth: {copy_gbs:.1f} GB/s")
    rows = []
    for row_bytes, table, unified, index in cases(flat, gathered_bytes):
        out = torch.empty(index.numel(), table.size(1))
        moved = 2 * index.numel() * row_bytes
        ring = BufferRing(4)

        def as_loaders_call_it():  # an output from the loaders' ring, let go of after the batch
            unified.gather(index, out=ring.empty(index.numel(), table.size(1), table.dtype))

        result = {
            "row_bytes": row_bytes,
            "gnnscale_gather": moved / seconds(lambda: unified.gather(index, out=out)) / 1e9,
            "gnnscale_loader_ring": moved / seconds(as_loaders_call_it) / 1e9,
            "gnnscale_fresh_output": moved / seconds(lambda: unified.gather(index)) / 1e9,
            "index_select": moved / seconds(lambda: torch.index_select(table, 0, index)) / 1e9,
            "index_select_out": moved / seconds(lambda: torch.index_select(table, 0, index, out=out)) / 1e9,
            "copy": copy_gbs,
        }
        result["fraction_of_copy"] = result["gnnscale_gather"] / copy_gbs
        result["loader_ring_fraction_of_copy"] = result["gnnscale_loader_ring"] / copy_gbs
        result["fresh_output_fraction_of_copy"] = result["gnnscale_fresh_output"] / copy_gbs
        result["vs_index_select"] = result["gnnscale_gather"] / result["index_select"]
        result["vs_index_select_out"] = result["gnnscale_gather"] / result["index_select_out"]
        rows.append(result)
        print(f"{row_bytes:>5} B rows: gnnscale {result['gnnscale_gather']:6.2f} GB/s "
              f"({100 * result['fraction_of_copy']:3.0f}% of copy; loaders' ring "
              f"{100 * result['loader_ring_fraction_of_copy']:3.0f}%, fresh output "
              f"{100 * result['fresh_output_fraction_of_copy']:3.0f}%) | index_select {result['index_select']:6.2f} "
              f"({result['vs_index_select']:4.1f}x) | index_select(out=) {result['index_select_out']:6.2f} "
              f"({result['vs_index_select_out']:4.1f}x)", flush=True)
    return rows


def gpu_rows(table_bytes, gathered_bytes):
    flat = torch.empty(table_bytes // 4, dtype=torch.float32).uniform_()
    unified_flat = UnifiedTensor(flat.view(-1, 1024)).pin_()
    pinned = torch.empty(gathered_bytes // 4).pin_memory()
    on_gpu = torch.empty_like(pinned, device="cuda")
    memcpy_gbs = pinned.numel() * 4 / seconds(lambda: on_gpu.copy_(pinned, non_blocking=True)) / 1e9
    print(f"pinned host-to-device cudaMemcpy: {memcpy_gbs:.1f} GB/s on {torch.cuda.get_device_name()}")
    rows = []
    for row_bytes, table, staged, index in cases(flat, gathered_bytes):
        # `table` views the registered memory (zero-copy reads); `staged`, never pinned itself,
        # takes the CPU gather + pinned staging + copy path.
        index_gpu = index.cuda()
        out = torch.empty(index.numel(), table.size(1), device="cuda")
        moved = index.numel() * row_bytes  # bytes crossing PCIe

        def zero_copy(align=True, sort=False):
            if not sort:
                return ops.gather_rows(table, index_gpu, out, align_reads=align)
            ids, order = torch.sort(index_gpu)  # as UnifiedTensor.gather does: rows land in asked order
            return ops.gather_rows(table, ids, out, positions=order, align_reads=align)

        result = {
            "row_bytes": row_bytes,
            "zero_copy": moved / seconds(zero_copy) / 1e9,
            "zero_copy_unaligned": moved / seconds(lambda: zero_copy(align=False)) / 1e9,
            "zero_copy_sorted": moved / seconds(lambda: zero_copy(sort=True)) / 1e9,
            "cpu_gather_plus_copy": moved / seconds(lambda: staged.gather(index, device="cuda", out=out)) / 1e9,
            "cudaMemcpy": memcpy_gbs,
        }
        # UnifiedTensor.gather sorts the ids of zero-copy reads by default: the sorted figure
        # (sort included) is what a gather from a pinned table gets.
        result["fraction_of_memcpy"] = result["zero_copy_sorted"] / memcpy_gbs
        result["vs_cpu_gather_plus_copy"] = result["zero_copy_sorted"] / result["cpu_gather_plus_copy"]
        rows.append(result)
        print(f"{row_bytes:>5} B rows: zero-copy sorted {result['zero_copy_sorted']:6.2f} GB/s "
              f"({100 * result['fraction_of_memcpy']:3.0f}% of memcpy; unsorted {result['zero_copy']:.2f}, "
              f"unsorted unaligned {result['zero_copy_unaligned']:.2f}) | "
              f"CPU gather + copy {result['cpu_gather_plus_copy']:.2f} ({result['vs_cpu_gather_plus_copy']:.1f}x)",
              flush=True)
    unified_flat.unpin_()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table-gb", type=float, default=2.0)
    parser.add_argument("--gathered-mb", type=float, default=512)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="rows of")  # short rows are measured on purpose
    table_bytes, gathered_bytes = int(args.table_gb * 2**30), int(args.gathered_mb * 2**20)
    print(f"gathering {args.gathered_mb:.0f} MB of random rows from a {args.table_gb:.1f} GB table, "
          f"{torch.get_num_threads()} threads")
    payload = {"table_bytes": table_bytes, "gathered_bytes": gathered_bytes, "cpu": cpu_rows(table_bytes, gathered_bytes)}
    if torch.cuda.is_available():
        payload["gpu"] = gpu_rows(table_bytes, gathered_bytes)
    else:
        print("no CUDA GPU visible: GPU rows skipped")
    print(f"wrote {write_result('gather', payload)}")


if __name__ == "__main__":
    main()
