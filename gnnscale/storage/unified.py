"""UnifiedTensor: a 2-D host table (in RAM or memory-mapped from disk) that the CPU gathers
from with all threads and a GPU reads in place once it is pinned."""
import threading
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from .. import ops
from ..npy import check_npy_size, map_npy, read_npy_header

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8)
# PCIe moves data in 128-byte requests; shorter rows waste part of every request.
EFFICIENT_ROW_BYTES = 128
# cudaHostRegister is called on pieces of at most this size (very large single registrations
# are slow and can fail on some drivers).
PIN_CHUNK_BYTES = 1 << 30
_CUDA_HOST_REGISTER_PORTABLE_MAPPED = 0x01 | 0x02
# Pieces this process registered, with how many tables read each: two tables over one tensor (two
# trainers on one dataset) share a registration, which ends when the last of them unpins.
_registered_pieces: Dict[Tuple[int, int], int] = {}
_registry_lock = threading.RLock()  # re-entrant: __del__ of another table may run inside pin_


def short_row_warning(row_bytes: int, device: Union[str, torch.device]) -> Optional[str]:
    """What to warn about when rows of ``row_bytes`` are gathered onto ``device``: rows shorter
    than a PCIe request waste part of every request a GPU makes to host memory, pinned (zero-copy)
    or staged alike; gathers onto the CPU cross no PCIe link and draw no warning (None)."""
    if torch.device(device).type != "cuda" or not 0 < row_bytes < EFFICIENT_ROW_BYTES:
        return None
    return (f"rows of {row_bytes} bytes are shorter than a {EFFICIENT_ROW_BYTES}-byte PCIe request, so GPU "
            "gathers over PCIe waste bandwidth; consider wider rows (concatenated features)")


class UnifiedTensor:
    """Wraps a contiguous ``[num_rows, width]`` host tensor without copying it.

    ``gather(index, device)`` returns ``table[index]`` on ``device``: on the CPU through the
    threaded C++ gather; for a GPU, when the table is pinned (:meth:`pin_`), by GPU threads that
    read the host rows directly, else by a CPU gather into a pinned staging buffer followed by an
    asynchronous copy on a side stream. Rows shorter than a PCIe request draw a warning at the
    first gather onto a GPU (:func:`short_row_warning`); CPU gathers never warn.
    """

    def __init__(self, data: Union[torch.Tensor, np.ndarray], *, dtype: Optional[torch.dtype] = None):
        if isinstance(data, np.ndarray):
            data = torch.from_numpy(data if data.flags.writeable else data.copy())
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"UnifiedTensor wraps a tensor or numpy array, got {type(data).__name__}")
        if data.dim() == 1:
            data = data.unsqueeze(1)
        if data.dim() != 2:
            raise ValueError(f"UnifiedTensor needs a 2-D table, got shape {tuple(data.shape)}")
        if data.device.type != "cpu":
            raise ValueError(f"UnifiedTensor holds host memory; got a tensor on {data.device}")
        if dtype is not None and dtype != data.dtype:
            data = data.to(dtype)  # e.g. float16 storage: half the bytes to move per row
        if data.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"unsupported dtype {data.dtype}; use one of {SUPPORTED_DTYPES}")
        self.data = data.contiguous()
        self._pinned: List[Tuple[int, int]] = []
        # Staging buffer and copy stream per calling thread: loader threads gather concurrently.
        self._per_thread = threading.local()
        # Said once per table, at its first gather onto a GPU: CPU training never crosses PCIe.
        self._warned_short_rows = False

    @classmethod
    def from_npy(cls, path, *, mmap: bool = True, dtype: Optional[torch.dtype] = None) -> "UnifiedTensor":
        """Opens a .npy file, memory-mapped by default so tables larger than RAM work.

        The file's size is checked against its header first, so a file cut short is a ValueError.
        A mapped file must not be truncated or rewritten while the table is open: reading a page
        past the new end of a mapped file raises SIGBUS, which kills the process and which no check
        at open time can prevent. Open with ``mmap=False`` a file that others may rewrite.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"feature file {path} does not exist")
        shape, stored, data_offset = read_npy_header(path)
        if stored.hasobject:
            raise ValueError(f"{path} holds Python objects ({stored}), not a numeric table")
        check_npy_size(path, shape, stored, data_offset)
        try:
            array = map_npy(path) if mmap else np.load(path, allow_pickle=False)
        except ValueError as error:
            raise ValueError(f"{path} is not a readable .npy array: {error}") from error
        return cls(torch.from_numpy(array), dtype=dtype)

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def row_bytes(self) -> int:
        return self.data.size(1) * self.data.element_size()

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    def __len__(self) -> int:
        return self.data.size(0)

    def __getitem__(self, index) -> torch.Tensor:
        return self.gather(torch.as_tensor(index).reshape(-1))

    # ------------------------------------------------------------------ pinning
    @property
    def is_pinned(self) -> bool:
        return bool(self._pinned)

    def pin_(self) -> "UnifiedTensor":
        """Page-locks the table in place (cudaHostRegister, in pieces), so GPUs can read it
        directly; no copy is made. A no-op without CUDA; pinning twice pins once. Memory that is
        already page-locked (another table over the same tensor, ``Tensor.pin_memory()``) is read
        as it is and left locked by :meth:`unpin_`."""
        if self._pinned or not torch.cuda.is_available() or self.nbytes == 0:
            return self
        cudart = torch.cuda.cudart()
        base = self.data.data_ptr()
        as_bytes = self.data.reshape(-1).view(torch.uint8)
        try:
            with _registry_lock:
                for offset in range(0, self.nbytes, PIN_CHUNK_BYTES):
                    piece = (base + offset, min(PIN_CHUNK_BYTES, self.nbytes - offset))
                    if piece in _registered_pieces:
                        _registered_pieces[piece] += 1
                    elif as_bytes[offset:offset + 1].is_pinned():
                        piece = (piece[0], 0)  # locked by someone else: never ours to unregister
                    else:
                        error = cudart.cudaHostRegister(piece[0], piece[1], _CUDA_HOST_REGISTER_PORTABLE_MAPPED)
                        if int(error) != 0:
                            raise RuntimeError(f"cudaHostRegister failed with error {int(error)} at offset {offset}")
                        _registered_pieces[piece] = 1
                    self._pinned.append(piece)
        except BaseException:
            self.unpin_()
            raise
        return self

    def unpin_(self) -> "UnifiedTensor":
        """Releases this table's page locks; a piece is unregistered when no other table reads it."""
        with _registry_lock:
            while self._pinned:
                piece = self._pinned.pop()
                if piece not in _registered_pieces:
                    continue  # borrowed
                _registered_pieces[piece] -= 1
                if _registered_pieces[piece] == 0:
                    del _registered_pieces[piece]
                    torch.cuda.cudart().cudaHostUnregister(piece[0])
        return self

    def __del__(self):
        try:
            self.unpin_()
        except Exception:  # interpreter shutdown: CUDA may already be gone
            pass

    # ------------------------------------------------------------------ gathering
    def gather(self, index: torch.Tensor, *, device: Union[str, torch.device, None] = None,
               out: Optional[torch.Tensor] = None, sort: Optional[bool] = None) -> torch.Tensor:
        """``table[index]`` on ``device`` (the index's device by default).

        ``sort=True`` reads the rows in ascending id order (better locality for memory-mapped
        tables and for PCIe) and still returns them in the order asked for; the default sorts
        for zero-copy GPU reads only.
        """
        index = torch.as_tensor(index)
        device = ops.resolve_device(device) if device is not None else index.device
        if out is None:
            out = torch.empty((index.numel(), self.data.size(1)), dtype=self.dtype, device=device)
        elif out.shape != (index.numel(), self.data.size(1)) or out.dtype != self.dtype or out.device != device:
            raise ValueError(f"out must be a {self.dtype} tensor of shape {(index.numel(), self.data.size(1))} "
                             f"on {device}")
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {device}")
        return self.gather_into(index, out, sort=sort)

    def gather_into(self, index: torch.Tensor, out: torch.Tensor, positions: Optional[torch.Tensor] = None, *,
                    sort: Optional[bool] = None) -> torch.Tensor:
        """Writes ``table[index[i]]`` into ``out[positions[i]]`` (``out[i]`` without positions),
        on ``out``'s device; the building block of :meth:`gather` and of the caches."""
        self._warn_of_short_rows(out.device)
        if sort is None:
            # Zero-copy reads in ascending address order: on an H100 (PCIe 5) random 512-byte rows
            # from a 4 GB pinned table moved 20 GB/s unsorted and 50 GB/s sorted, sort included
            # (bench/gather.py), likely from the GPU's address translation of host pages.
            sort = self.is_pinned and out.device.type == "cuda"
            if sort:  # sort where the kernel reads the ids
                index = index.to(out.device, non_blocking=True)
                positions = None if positions is None else positions.to(out.device, non_blocking=True)
        if sort and index.numel() > 1:
            index, order = torch.sort(index)
            positions = order if positions is None else positions[order]
        if out.device.type == "cpu":
            return ops.gather_rows(self.data, index.cpu(), out, positions=None if positions is None else positions.cpu())
        if self.is_pinned:
            index = index.to(out.device, non_blocking=True)
            positions = None if positions is None else positions.to(out.device, non_blocking=True)
            return ops.gather_rows(self.data, index, out, positions=positions)
        return self._gather_through_staging(index, positions, out)

    def _warn_of_short_rows(self, device: torch.device) -> None:
        if self._warned_short_rows:
            return
        message = short_row_warning(self.row_bytes, device)
        if message is not None:
            self._warned_short_rows = True
            warnings.warn(message, stacklevel=4)  # the caller of gather (or of a cache's gather)

    def _gather_through_staging(self, index, positions, out):
        """CPU gather into a reusable pinned buffer, then an asynchronous copy on a side stream
        that the caller's stream waits for."""
        if positions is not None:  # rows land in `out` in index order; place them afterwards
            # Checked here, as the kernels check theirs: torch's indexing would take -1 as the last row.
            ops.check_index_tensor("positions", positions, out.size(0))
            rows = self._gather_through_staging(index, None, torch.empty_like(out[:index.numel()]))
            out[positions.to(out.device)] = rows
            return out
        count = index.numel()
        local = self._per_thread
        if getattr(local, "staging", None) is None or local.staging.size(0) < count:
            local.staging = torch.empty((max(count, 1024), self.data.size(1)), dtype=self.dtype).pin_memory()
            local.stream = torch.cuda.Stream(out.device)
        staging = local.staging[:count]
        # The previous copy out of the buffer must finish before it is overwritten.
        local.stream.synchronize()
        ops.gather_rows(self.data, index.cpu(), staging)
        local.stream.wait_stream(torch.cuda.current_stream(out.device))  # `out` is ready to write
        with torch.cuda.stream(local.stream):
            out.copy_(staging, non_blocking=True)
        torch.cuda.current_stream(out.device).wait_stream(local.stream)
        return out

    def __repr__(self) -> str:
        return f"UnifiedTensor(shape={tuple(self.shape)}, dtype={self.dtype}, pinned={self.is_pinned})"
